-- Core bookkeeping: runs, items, outbox, dead letters.

CREATE TABLE runs (
    run_id          bigserial PRIMARY KEY,
    job             text        NOT NULL,
    kind            text        NOT NULL
                    CHECK (kind IN ('scheduled', 'manual', 'backfill', 'triggered')),
    scheduled_for   timestamptz,
    dry_run         boolean     NOT NULL DEFAULT false,
    -- pending: recorded, items not enumerated yet; running: items recorded
    -- (items_total known); finalizing: every item terminal, finalizer due;
    -- then succeeded / failed / skipped (Forbid) / cancelled (Replace).
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'running', 'finalizing',
                                      'succeeded', 'failed', 'skipped',
                                      'cancelled')),
    items_total     integer,
    items_done      integer     NOT NULL DEFAULT 0,
    items_failed    integer     NOT NULL DEFAULT 0,
    emitted_at      timestamptz,           -- every item message produced
    finalize_after  timestamptz,           -- when a sweeper may finalize
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    error           text,
    report          jsonb                  -- finalizer summary / dry-run report
);
-- Two producers never fire the same slot twice.
CREATE UNIQUE INDEX runs_job_slot ON runs (job, scheduled_for)
    WHERE kind = 'scheduled';
CREATE INDEX runs_job_created ON runs (job, created_at DESC);
CREATE INDEX runs_open ON runs (status)
    WHERE status IN ('pending', 'running', 'finalizing');

CREATE TABLE items (
    run_id      bigint  NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    item_key    text    NOT NULL,
    status      text    NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'done', 'failed')),
    attempts    integer NOT NULL DEFAULT 0,
    error       text,
    payload     jsonb   NOT NULL DEFAULT '{}', -- re-emitted after a crash
    report      jsonb,          -- dry run: what would have been written / sent
    started_at  timestamptz,
    finished_at timestamptz,
    PRIMARY KEY (run_id, item_key)
);
CREATE INDEX items_open ON items (run_id) WHERE status = 'pending';

-- External side effects, written in the item's transaction and delivered by
-- the dispatcher. The idempotency key makes a re-run of an item a no-op here.
CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    idempotency_key text        NOT NULL UNIQUE,
    run_id          bigint      REFERENCES runs (run_id) ON DELETE SET NULL,
    channel         text        NOT NULL,       -- telegram, ...
    target          text        NOT NULL,       -- chat id, address, ...
    payload         jsonb       NOT NULL,
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz
);
CREATE INDEX outbox_due ON outbox (channel, target, id) WHERE status = 'pending';

-- Messages that could not be processed at all (unparseable, oversized,
-- unknown handler) or items that failed for good, with the reason and
-- where they came from. Nothing is dropped silently.
CREATE TABLE dead_letters (
    id          bigserial PRIMARY KEY,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    "offset"    bigint      NOT NULL,
    msg_key     bytea,
    payload     bytea,
    reason      text        NOT NULL,
    job         text,
    run_id      bigint,
    item_key    text,
    attempts    integer     NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (topic, partition, "offset")
);
