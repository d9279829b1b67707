-- Attachments of outbox messages (the hourly report's workbook, sent by
-- email and by Telegram): stored once under an idempotency key, in the
-- item's transaction, and referenced from outbox.payload ("file": id).
-- They stay as the record of what was sent.
CREATE TABLE outbox_files (
    id         bigserial   PRIMARY KEY,
    key        text        NOT NULL UNIQUE,
    run_id     bigint      REFERENCES runs (run_id) ON DELETE SET NULL,
    filename   text        NOT NULL,
    mime_type  text        NOT NULL,
    content    bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- The hourly report reads the runs of an hour.
CREATE INDEX runs_started ON runs (coalesce(started_at, created_at));
