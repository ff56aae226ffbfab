-- +goose Up
CREATE TABLE agents (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name              text             NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    description       text             NOT NULL DEFAULT '' CHECK (char_length(description) <= 2000),
    instructions      text             NOT NULL DEFAULT '' CHECK (char_length(instructions) <= 20000),
    model             text             NOT NULL CHECK (char_length(model) BETWEEN 1 AND 100),
    temperature       double precision NOT NULL DEFAULT 0.2 CHECK (temperature BETWEEN 0 AND 2),
    max_output_tokens integer          CHECK (max_output_tokens BETWEEN 1 AND 128000),
    tools             text[]           NOT NULL DEFAULT '{}',
    is_active         boolean          NOT NULL DEFAULT true,
    created_by        bigint           REFERENCES users (id) ON DELETE SET NULL,
    created_at        timestamptz      NOT NULL DEFAULT now(),
    updated_at        timestamptz      NOT NULL DEFAULT now(),
    version           bigint           NOT NULL DEFAULT 1
);

CREATE UNIQUE INDEX agents_name_lower_key ON agents (lower(name));

CREATE TYPE agent_run_status AS ENUM ('queued', 'in_progress', 'completed', 'failed', 'cancelled', 'incomplete');

CREATE TABLE agent_runs (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent_id            bigint           NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    task_id             bigint           REFERENCES tasks (id) ON DELETE SET NULL,
    status              agent_run_status NOT NULL DEFAULT 'queued',
    input               text             NOT NULL CHECK (char_length(input) <= 100000),
    output              text,
    -- Recorded tool calls, in order; each also keeps the model's call id and turn so that
    -- a retried attempt can rebuild the conversation and resume after the last step.
    steps               jsonb            NOT NULL DEFAULT '[]',
    error_code          text,
    error_message       text,
    model               text             NOT NULL,
    prompt_tokens       bigint           NOT NULL DEFAULT 0,
    completion_tokens   bigint           NOT NULL DEFAULT 0,
    total_tokens        bigint           NOT NULL DEFAULT 0,
    attempt             integer          NOT NULL DEFAULT 0,
    metadata            jsonb            NOT NULL DEFAULT '{}',
    job_id              bigint,
    created_by          bigint           REFERENCES users (id) ON DELETE SET NULL,
    cancel_requested_at timestamptz,
    created_at          timestamptz      NOT NULL DEFAULT now(),
    started_at          timestamptz,
    completed_at        timestamptz,
    updated_at          timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT agent_runs_error_pair CHECK ((error_code IS NULL) = (error_message IS NULL))
);

CREATE INDEX agent_runs_agent_idx ON agent_runs (agent_id, id);
CREATE INDEX agent_runs_task_idx ON agent_runs (task_id, id);
CREATE INDEX agent_runs_created_by_idx ON agent_runs (created_by, id);
CREATE INDEX agent_runs_status_idx ON agent_runs (status, id);

-- The event log of each run, replayed to every stream; seq counts from 1 per run.
CREATE TABLE agent_run_events (
    run_id     bigint      NOT NULL REFERENCES agent_runs (id) ON DELETE CASCADE,
    seq        bigint      NOT NULL,
    type       text        NOT NULL,
    data       jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, seq)
);

-- +goose Down
DROP TABLE agent_run_events;
DROP TABLE agent_runs;
DROP TYPE agent_run_status;
DROP TABLE agents;
