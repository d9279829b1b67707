-- The stopword refresh job: the corpus, per-shard partial statistics and
-- the merged totals (common/text/termstats.c encodes them).
CREATE TABLE documents (
    id          bigint      PRIMARY KEY,
    lang        text,                  -- ISO 639-1; NULL: detect
    body        text        NOT NULL DEFAULT '',
    updated_at  timestamptz NOT NULL DEFAULT now(),
    deleted     boolean     NOT NULL DEFAULT false
);
-- "Changed since T" (incremental runs) is a range scan.
CREATE INDEX documents_updated ON documents (updated_at);

-- Source `shards`: the time the run's enumeration started; a successful
-- run makes it the job's watermark.
ALTER TABLE runs ADD COLUMN watermark timestamptz;
CREATE TABLE shard_watermarks (
    job         text        PRIMARY KEY,
    watermark   timestamptz NOT NULL,
    run_id      bigint      NOT NULL
);

-- One shard's statistics as counted by one run (the checkpoint of a run:
-- a resumed run does not count a shard twice).
CREATE TABLE stopword_partials (
    job           text        NOT NULL,
    shard         bigint      NOT NULL,
    run_id        bigint      NOT NULL,
    docs          bigint      NOT NULL,
    bytes         bigint      NOT NULL,
    words         bigint      NOT NULL,
    lang_missing  bigint      NOT NULL,  -- documents without a language
    lang_detected bigint      NOT NULL,  -- ... whose language was detected
    invalid_bytes bigint      NOT NULL,
    data          bytea       NOT NULL,  -- zstd, termstats encoding
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job, shard, run_id)
);
-- Which run's partial of each shard is in the totals.
CREATE TABLE stopword_shards (
    job     text   NOT NULL,
    shard   bigint NOT NULL,
    run_id  bigint NOT NULL,
    PRIMARY KEY (job, shard)
);
CREATE TABLE stopword_totals (
    job         text        PRIMARY KEY,
    run_id      bigint      NOT NULL,
    data        bytea       NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- The current totals per term, for queries and the scoring.
CREATE TABLE stopword_terms (
    job    text   NOT NULL,
    lang   text   NOT NULL,
    term   text   NOT NULL,
    df     bigint NOT NULL,
    count  bigint NOT NULL,
    nlogn  bigint NOT NULL,  -- sum of n ln n, fixed point (x 65536)
    PRIMARY KEY (job, lang, term)
);
