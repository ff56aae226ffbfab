-- +goose Up
-- What a run's write tools may change: in a run created for a task, 'task' limits them to
-- that task; 'creator' lets them act with all of the run creator's permissions.
CREATE TYPE agent_tool_scope AS ENUM ('task', 'creator');
ALTER TABLE agents ADD COLUMN tool_scope agent_tool_scope NOT NULL DEFAULT 'task';

-- Counts each user's active runs for the per-user quota without reading finished ones.
CREATE INDEX agent_runs_active_creator_idx ON agent_runs (created_by)
    WHERE status IN ('queued', 'in_progress');

-- +goose Down
DROP INDEX agent_runs_active_creator_idx;
ALTER TABLE agents DROP COLUMN tool_scope;
DROP TYPE agent_tool_scope;
