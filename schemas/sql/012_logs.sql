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
