-- Demo data for the batch-analyzer job (seed 000): a handful of projects,
-- loaded by scripts/demo.sh after `nightshift migrate`.
--
-- Idempotent: fixed ids, upserted, so loading it again resets these rows to
-- the values below and touches nothing else (analyses of earlier runs stay).
-- Only projects with status 'active' become items of a run; two are not.
-- Project 4's name is hostile on purpose: it must be stored verbatim, reach
-- the LLM verbatim, and arrive in Telegram's HTML as plain text.

BEGIN;

INSERT INTO projects (id, name, description, status, progress) VALUES
    (1, 'Customer portal redesign',
        'New self-service portal: account settings, invoices, support tickets.',
        'active', 65),
    (2, 'Data warehouse migration',
        'Move the nightly ETL from the legacy warehouse to PostgreSQL partitions.',
        'active', 30),
    (3, 'Mobile app v2',
        'Offline mode, push notifications and a new onboarding flow.',
        'active', 85),
    (4, '*_[evil](x) <b>bold</b> ''; DROP TABLE projects; --',
        'A name full of Markdown, HTML and SQL metacharacters & "quotes": it must come out as plain text.',
        'active', 10),
    (5, 'Проект «Север» — логистика',
        'Route planning for northern warehouses (UTF-8: кириллица, emoji 🚚).',
        'active', 50),
    (6, 'Security audit 2024',
        'External penetration test and remediation of the findings.',
        'active', 95),
    (7, 'Legacy CRM sunset',
        'Replaced by the customer portal; kept read-only until the archive is done.',
        'inactive', 100),
    (8, 'Blockchain loyalty points',
        'Paused after the pilot: no budget this year.',
        'on_hold', 20)
ON CONFLICT (id) DO UPDATE SET
    name        = EXCLUDED.name,
    description = EXCLUDED.description,
    status      = EXCLUDED.status,
    progress    = EXCLUDED.progress,
    updated_at  = now();

-- Later inserts without an id must not collide with the fixed ones.
SELECT setval(pg_get_serial_sequence('projects', 'id'),
              greatest((SELECT max(id) FROM projects), 1));

COMMIT;
