-- A run's arguments (`nightshift run JOB --reprocess --since T --type X`).
ALTER TABLE runs ADD COLUMN args jsonb NOT NULL DEFAULT '{}';

-- Seed 002, nightly structuring: each raw message is classified by the
-- structurer and laid out into the typed table of its type; the raw
-- message records where it went. Writing the typed row and marking the
-- raw message processed happen in one transaction.
ALTER TABLE raw_messages
    ADD COLUMN structured_type    text,
    ADD COLUMN structured_id      bigint,
    ADD COLUMN structurer_version text;
CREATE INDEX raw_messages_structured ON raw_messages (structured_type)
    WHERE is_processed;

CREATE TABLE events (
    id                 bigserial   PRIMARY KEY,
    raw_message_id     bigint      NOT NULL UNIQUE REFERENCES raw_messages (id),
    user_id            bigint      NOT NULL,
    title              text        NOT NULL,
    starts_at          timestamptz,
    ends_at            timestamptz,
    location           text,
    structurer_version text        NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE tasks (
    id                 bigserial   PRIMARY KEY,
    raw_message_id     bigint      NOT NULL UNIQUE REFERENCES raw_messages (id),
    user_id            bigint      NOT NULL,
    title              text        NOT NULL,
    due_at             timestamptz,
    priority           text        NOT NULL CHECK (priority IN ('low', 'normal', 'high')),
    done               boolean     NOT NULL DEFAULT false,
    structurer_version text        NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE notes (
    id                 bigserial   PRIMARY KEY,
    raw_message_id     bigint      NOT NULL UNIQUE REFERENCES raw_messages (id),
    user_id            bigint      NOT NULL,
    title              text        NOT NULL,
    body               text        NOT NULL,
    structurer_version text        NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE questions (
    id                 bigserial   PRIMARY KEY,
    raw_message_id     bigint      NOT NULL UNIQUE REFERENCES raw_messages (id),
    user_id            bigint      NOT NULL,
    question           text        NOT NULL,
    topic              text,
    structurer_version text        NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE files (
    id                 bigserial   PRIMARY KEY,
    raw_message_id     bigint      NOT NULL UNIQUE REFERENCES raw_messages (id),
    raw_file_id        bigint      REFERENCES raw_files (id),
    user_id            bigint      NOT NULL,
    description        text        NOT NULL,
    structurer_version text        NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now()
);

-- Every row moved by a re-structuring: nothing is deleted without a trace.
CREATE TABLE structuring_moves (
    id                 bigserial   PRIMARY KEY,
    raw_message_id     bigint      NOT NULL REFERENCES raw_messages (id),
    run_id             bigint      REFERENCES runs (run_id) ON DELETE SET NULL,
    from_type          text        NOT NULL,
    from_id            bigint      NOT NULL,
    from_row           jsonb       NOT NULL,   -- the row as it was
    to_type            text        NOT NULL,
    to_id              bigint      NOT NULL,
    structurer_version text        NOT NULL,
    moved_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX structuring_moves_message ON structuring_moves (raw_message_id);
