-- +goose Up
-- Model turns answered from the LLM response cache (identical request at temperature 0).
ALTER TABLE agent_runs ADD COLUMN cached_completions bigint NOT NULL DEFAULT 0
    CONSTRAINT agent_runs_cached_completions_check CHECK (cached_completions >= 0);

-- +goose Down
ALTER TABLE agent_runs DROP COLUMN cached_completions;
