-- Log analyzer (seed 003): log templates, counts per window, and what
-- each window saw. Template ids are the parser's 64-bit ids (FNV-1a of
-- the template's first text, text/logparse.c), stored as bigint (the
-- same 64 bits, signed), so every process and every re-run agrees.
CREATE TABLE log_templates (
    template_id bigint      PRIMARY KEY,
    template    text        NOT NULL,   -- current text (generalises)
    revision    integer     NOT NULL DEFAULT 0,
    level       text        NOT NULL DEFAULT 'unknown', -- highest seen
    first_seen  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL
);

-- Lines per (job, service, window, template). A window processed again
-- replaces its rows (delete + insert in the item's transaction), so a
-- re-run or a backfill of a day changes nothing twice.
CREATE TABLE log_window_counts (
    job          text        NOT NULL,
    service      text        NOT NULL,   -- '' when the line names none
    window_start timestamptz NOT NULL,
    template_id  bigint      NOT NULL REFERENCES log_templates,
    lines        integer     NOT NULL,
    level        text        NOT NULL,   -- highest level among them
    PRIMARY KEY (job, service, window_start, template_id)
);
CREATE INDEX log_window_counts_template
    ON log_window_counts (template_id, window_start);

-- One row per processed (job, item service, window): lines counted,
-- refused (bad input), and read but of another window (outside: the read
-- starts skew_seconds early and ends grace_seconds late).
CREATE TABLE log_windows (
    job          text        NOT NULL,
    service      text        NOT NULL,   -- the item's service, '' for all
    window_start timestamptz NOT NULL,
    window_end   timestamptz NOT NULL,
    run_id       bigint,
    lines        bigint      NOT NULL,
    bad_lines    bigint      NOT NULL,
    outside_lines bigint     NOT NULL,
    templates    integer     NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job, service, window_start)
);

-- Incidents: a template's spike (far above its own history) or burst (new
-- or rare, at a high rate) in a service, open from the window it was seen
-- in until the first window where it is not, when it resolves. Critical
-- ones alert Teams once when they open and once when they resolve.
CREATE TABLE log_incidents (
    id              bigserial   PRIMARY KEY,
    job             text        NOT NULL,
    service         text        NOT NULL,
    template_id     bigint      NOT NULL REFERENCES log_templates,
    kind            text        NOT NULL CHECK (kind IN ('spike', 'burst')),
    severity        text        NOT NULL
                    CHECK (severity IN ('info', 'warning', 'critical')),
    method          text        NOT NULL,  -- median/MAD, EWMA, new, rare
    status          text        NOT NULL DEFAULT 'open'
                    CHECK (status IN ('open', 'resolved')),
    opened_window   timestamptz NOT NULL,
    last_window     timestamptz NOT NULL,
    resolved_window timestamptz,
    windows         integer     NOT NULL DEFAULT 1,
    peak_lines      integer     NOT NULL,
    baseline        double precision NOT NULL,
    score           double precision NOT NULL,
    alerted         boolean     NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX log_incidents_open ON log_incidents (job, service, template_id)
    WHERE status = 'open';
CREATE INDEX log_incidents_job ON log_incidents (job, opened_window);

-- The registries the seed's reports are made of: known errors (templates
-- at error level or above, with their occurrences) and peaks (spikes).
CREATE VIEW log_known_errors AS
SELECT t.template_id, t.template, t.level, t.first_seen, t.last_seen,
       coalesce(sum(c.lines), 0) AS occurrences,
       CASE WHEN EXISTS (SELECT 1 FROM log_incidents i
                          WHERE i.template_id = t.template_id
                            AND i.status = 'open')
            THEN 'active' ELSE 'known' END AS status
  FROM log_templates t
  LEFT JOIN log_window_counts c ON c.template_id = t.template_id
 WHERE t.level IN ('error', 'critical', 'alert', 'emergency')
 GROUP BY t.template_id;

CREATE VIEW log_peaks AS
SELECT i.id, i.job, i.service, i.template_id, t.template, i.severity,
       i.opened_window AS first_seen, i.last_window AS last_seen,
       i.peak_lines, i.baseline, i.score, i.windows, i.status
  FROM log_incidents i JOIN log_templates t USING (template_id)
 WHERE i.kind = 'spike';
