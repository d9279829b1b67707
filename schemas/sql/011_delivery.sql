-- Delivery at scale: what a queued message is to its run, digests, and
-- when a run's messages were all delivered.
--
-- kind: 'report' (one item's own report: may be packed into a digest with
-- the next reports of the same run to the same target), 'summary' (queued
-- by a finalizer: sent only after every other message of its run is sent
-- or failed for good), 'message' (anything else, sent on its own).
ALTER TABLE outbox
    ADD COLUMN kind text NOT NULL DEFAULT 'message'
        CHECK (kind IN ('message', 'report', 'summary')),
    -- The message that carried this one (a digest's first row; itself
    -- when sent alone), so "messages sent" and "reports delivered" differ.
    ADD COLUMN sent_with bigint;
-- A run's messages: the summary's wait, delivery figures in status.
CREATE INDEX outbox_run ON outbox (run_id, status);

-- Set when the last of the run's outbox messages became sent or failed
-- (and the run itself was finished); NULL while some are pending or when
-- the run queued none.
ALTER TABLE runs ADD COLUMN delivered_at timestamptz;
