-- Dead letters carry what an operator needs to judge and replay them.
ALTER TABLE dead_letters
    ADD COLUMN handler         text,
    ADD COLUMN first_failed_at timestamptz,
    ADD COLUMN replayed_at     timestamptz,
    ADD COLUMN replay_count    integer NOT NULL DEFAULT 0;
CREATE INDEX dead_letters_job_created ON dead_letters (job, created_at);
CREATE INDEX dead_letters_created ON dead_letters (created_at);
