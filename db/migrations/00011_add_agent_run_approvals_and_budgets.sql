-- +goose NO TRANSACTION
-- A new enum value cannot be used in the transaction that adds it, and the quota's
-- partial index below uses them: this migration runs statement by statement, each
-- statement safe to repeat.

-- +goose Up
ALTER TYPE agent_run_status ADD VALUE IF NOT EXISTS 'requires_action' AFTER 'in_progress';
ALTER TYPE agent_run_status ADD VALUE IF NOT EXISTS 'expired';

-- Approvals, budgets and structured output, as agent defaults.
ALTER TABLE agents
    ADD COLUMN IF NOT EXISTS approval_required_tools text[] NOT NULL DEFAULT '{}',
    ADD COLUMN IF NOT EXISTS max_steps        integer CHECK (max_steps >= 1),
    ADD COLUMN IF NOT EXISTS max_tool_calls   integer CHECK (max_tool_calls >= 1),
    ADD COLUMN IF NOT EXISTS max_total_tokens bigint  CHECK (max_total_tokens >= 1),
    ADD COLUMN IF NOT EXISTS output_schema    jsonb;

-- A run's own budgets (resolved at creation: the run's, else its agent's, else the
-- server's), its structured output, the tool calls of its current turn that are not done
-- yet (with their approval decisions), and what it waits for while requires_action.
ALTER TABLE agent_runs
    ADD COLUMN IF NOT EXISTS max_steps          integer NOT NULL DEFAULT 8,
    ADD COLUMN IF NOT EXISTS max_tool_calls     integer NOT NULL DEFAULT 32,
    ADD COLUMN IF NOT EXISTS max_total_tokens   bigint,
    ADD COLUMN IF NOT EXISTS output_schema      jsonb,
    ADD COLUMN IF NOT EXISTS output_json        jsonb,
    ADD COLUMN IF NOT EXISTS incomplete_reason  text,
    ADD COLUMN IF NOT EXISTS model_turns        integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS tool_calls         integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS llm_failures       integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS pending_tool_calls jsonb   NOT NULL DEFAULT '[]',
    ADD COLUMN IF NOT EXISTS required_action    jsonb,
    ADD COLUMN IF NOT EXISTS expires_at         timestamptz,
    -- The task as the model read it in the first turn: later turns (other jobs) give it
    -- the same conversation.
    ADD COLUMN IF NOT EXISTS task_context       text;

-- The tool calls whose effect is committed, keyed by run, turn and the model's call id:
-- a call's row, its effect and its step are written in one transaction, so a call that
-- has a row is never run again (after a crash, a retry or a concurrent worker).
CREATE TABLE IF NOT EXISTS agent_run_tool_calls (
    run_id     bigint      NOT NULL REFERENCES agent_runs (id) ON DELETE CASCADE,
    turn       integer     NOT NULL,
    call_id    text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, turn, call_id)
);

-- The per-user quota counts waiting runs too.
DROP INDEX IF EXISTS agent_runs_active_creator_idx;
CREATE INDEX IF NOT EXISTS agent_runs_active_creator_idx ON agent_runs (created_by)
    WHERE status IN ('queued', 'in_progress', 'requires_action');

-- +goose Down
DROP INDEX IF EXISTS agent_runs_active_creator_idx;
CREATE INDEX IF NOT EXISTS agent_runs_active_creator_idx ON agent_runs (created_by)
    WHERE status IN ('queued', 'in_progress');
DROP TABLE IF EXISTS agent_run_tool_calls;
ALTER TABLE agent_runs
    DROP COLUMN IF EXISTS max_steps, DROP COLUMN IF EXISTS max_tool_calls, DROP COLUMN IF EXISTS max_total_tokens,
    DROP COLUMN IF EXISTS output_schema, DROP COLUMN IF EXISTS output_json, DROP COLUMN IF EXISTS incomplete_reason,
    DROP COLUMN IF EXISTS model_turns, DROP COLUMN IF EXISTS tool_calls, DROP COLUMN IF EXISTS llm_failures,
    DROP COLUMN IF EXISTS pending_tool_calls, DROP COLUMN IF EXISTS required_action, DROP COLUMN IF EXISTS expires_at,
    DROP COLUMN IF EXISTS task_context;
ALTER TABLE agents
    DROP COLUMN IF EXISTS approval_required_tools, DROP COLUMN IF EXISTS max_steps, DROP COLUMN IF EXISTS max_tool_calls,
    DROP COLUMN IF EXISTS max_total_tokens, DROP COLUMN IF EXISTS output_schema;
-- The enum keeps its two values (PostgreSQL cannot drop enum values); runs in them are
-- ended as failed so that the previous build can read every run.
UPDATE agent_runs SET status = 'failed', error_code = 'approval_expired', error_message = 'the run was waiting when the database was downgraded'
WHERE status::text IN ('requires_action', 'expired');
