-- Seed 002: store absolutely everything raw first, structure later.
-- Every update Telegram delivered, as it came (unique on update_id: a
-- redelivery is stored once); the message tables below are laid out from
-- it in the same transaction.
CREATE TABLE raw_updates (
    update_id   bigint      PRIMARY KEY,
    chat_id     bigint,
    kind        text        NOT NULL,   -- message, edited_message, ...
    raw         jsonb       NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

-- Files (documents, photos, voice, ...): the content is fetched with
-- getFile into the configured directory, named by its sha256; the same
-- file twice is stored once (file_hash, telegram_file_unique_id).
CREATE TABLE raw_files (
    id                      bigserial   PRIMARY KEY,
    user_id                 bigint      NOT NULL,
    chat_id                 bigint      NOT NULL,
    message_id              bigint      NOT NULL,
    file_type               text        NOT NULL,
    file_name               text,
    file_path               text,       -- NULL: not fetched (too large)
    file_size               bigint,
    file_hash               text        UNIQUE,   -- sha256, hex
    mime_type               text,
    telegram_file_id        text,
    telegram_file_unique_id text        UNIQUE,
    raw_metadata            jsonb,
    is_processed            boolean     NOT NULL DEFAULT false,
    processed_at            timestamptz,
    uploaded_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_raw_files_user ON raw_files (user_id);

CREATE TABLE raw_messages (
    id                  bigserial   PRIMARY KEY,
    update_id           bigint      NOT NULL UNIQUE,
    chat_id             bigint      NOT NULL,
    user_id             bigint      NOT NULL,
    message_id          bigint      NOT NULL,
    message_text        text,
    message_type        text        NOT NULL,
    -- the reply chain
    reply_to_message_id bigint,
    reply_to_text       text,
    is_clarification    boolean     NOT NULL DEFAULT false,
    raw_telegram_json   jsonb       NOT NULL,
    file_id             bigint      REFERENCES raw_files (id),
    sent_at             timestamptz,
    edited_at           timestamptz,
    -- structuring
    is_processed        boolean     NOT NULL DEFAULT false,
    processed_at        timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (chat_id, message_id)
);
CREATE INDEX idx_raw_messages_user ON raw_messages (user_id);
CREATE INDEX raw_messages_unprocessed ON raw_messages (id)
    WHERE NOT is_processed;

CREATE TABLE message_chains (
    id                  bigserial   PRIMARY KEY,
    chain_id            uuid        NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    chat_id             bigint      NOT NULL,
    user_id             bigint      NOT NULL,
    original_message_id bigint      NOT NULL,
    original_text       text,
    replies             jsonb       NOT NULL DEFAULT '[]'::jsonb,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (chat_id, original_message_id)
);
CREATE INDEX idx_chains_user ON message_chains (user_id);

-- What the bot answered (posted to nightshift ingest by the bot itself).
CREATE TABLE bot_responses (
    id                      bigserial   PRIMARY KEY,
    chat_id                 bigint      NOT NULL,
    user_id                 bigint      NOT NULL,
    message_id              bigint      NOT NULL,
    response_text           text        NOT NULL,
    response_type           text,
    related_user_message_id bigint,
    ai_analysis             jsonb,
    chain_id                uuid,
    raw_telegram_json       jsonb       NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now(),
    UNIQUE (chat_id, message_id)
);
