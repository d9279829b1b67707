-- batch-analyzer (seed 000): projects and their LLM analyses.

CREATE TABLE projects (
    id          bigserial PRIMARY KEY,
    name        text        NOT NULL,
    description text        NOT NULL DEFAULT '',
    status      text        NOT NULL DEFAULT 'active',
    progress    integer     NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX projects_active ON projects (id) WHERE status = 'active';

CREATE TABLE analyses (
    id                bigserial PRIMARY KEY,
    project_id        bigint      NOT NULL REFERENCES projects (id),
    run_id            bigint      NOT NULL REFERENCES runs (run_id),
    content           text        NOT NULL,
    model             text        NOT NULL,
    prompt_tokens     integer     NOT NULL DEFAULT 0,
    completion_tokens integer     NOT NULL DEFAULT 0,
    total_tokens      integer     NOT NULL DEFAULT 0,
    latency_ms        integer     NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, run_id)
);
CREATE INDEX analyses_created ON analyses (created_at);
