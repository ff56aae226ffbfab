-- +goose Up
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TYPE task_status AS ENUM ('pending', 'in_progress', 'completed', 'failed', 'cancelled');
-- Declared in rank order, so ORDER BY priority sorts low < medium < high < urgent.
CREATE TYPE task_priority AS ENUM ('low', 'medium', 'high', 'urgent');

-- +goose StatementBegin
CREATE FUNCTION task_tags_valid(tags text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT cardinality(tags) <= 20
       AND coalesce(bool_and(t IS NOT NULL AND char_length(t) BETWEEN 1 AND 50), true)
       AND count(DISTINCT t) = count(t)
    FROM unnest(tags) AS t
$$;
-- +goose StatementEnd

CREATE TABLE tasks (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    title        text          NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    description  text          NOT NULL DEFAULT '' CHECK (char_length(description) <= 10000),
    status       task_status   NOT NULL DEFAULT 'pending',
    priority     task_priority NOT NULL DEFAULT 'medium',
    assignee_id  bigint        REFERENCES users (id) ON DELETE SET NULL,
    created_by   bigint        REFERENCES users (id) ON DELETE SET NULL,
    due_at       timestamptz,
    tags         text[]        NOT NULL DEFAULT '{}' CHECK (task_tags_valid(tags)),
    metadata     jsonb         NOT NULL DEFAULT '{}'
                 -- The exact 64 KiB limit on compact JSON is checked by the service; this is a backstop
                 -- (PostgreSQL's text form adds spaces).
                 CHECK (jsonb_typeof(metadata) = 'object' AND octet_length(metadata::text) <= 131072),
    created_at   timestamptz   NOT NULL DEFAULT now(),
    updated_at   timestamptz   NOT NULL DEFAULT now(),
    completed_at timestamptz,
    version      bigint        NOT NULL DEFAULT 1,
    CONSTRAINT tasks_completed_at_matches_status
        CHECK ((status IN ('completed', 'failed', 'cancelled')) = (completed_at IS NOT NULL))
);

-- One index per sort order (both directions scan the same index; due_at needs two so
-- that tasks without a due date come last either way), and per filter. The id column
-- makes each order total, for stable pages.
CREATE INDEX tasks_created_at_idx ON tasks (created_at, id);
CREATE INDEX tasks_updated_at_idx ON tasks (updated_at, id);
CREATE INDEX tasks_due_at_idx ON tasks (due_at, id);
CREATE INDEX tasks_due_at_desc_idx ON tasks (due_at DESC NULLS LAST, id DESC);
CREATE INDEX tasks_priority_idx ON tasks (priority, id);
CREATE INDEX tasks_status_idx ON tasks (status, created_at, id);
CREATE INDEX tasks_assignee_idx ON tasks (assignee_id, status, created_at, id);
CREATE INDEX tasks_created_by_idx ON tasks (created_by, created_at, id);
CREATE INDEX tasks_tags_idx ON tasks USING gin (tags);
CREATE INDEX tasks_title_trgm_idx ON tasks USING gin (title gin_trgm_ops);
CREATE INDEX tasks_description_trgm_idx ON tasks USING gin (description gin_trgm_ops);

-- Stored first responses of requests sent with an Idempotency-Key, per user.
CREATE TABLE idempotency_keys (
    user_id          bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key              text        NOT NULL CHECK (char_length(key) BETWEEN 1 AND 255),
    request_hash     bytea       NOT NULL,
    -- NULL while the first request is still being processed.
    status_code      integer,
    response_headers jsonb,
    response_body    bytea,
    locked_at        timestamptz NOT NULL DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    PRIMARY KEY (user_id, key)
);

CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);

-- +goose Down
DROP TABLE idempotency_keys;
DROP TABLE tasks;
DROP FUNCTION task_tags_valid(text[]);
DROP TYPE task_priority;
DROP TYPE task_status;
