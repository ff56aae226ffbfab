-- name: AgentCreate :one
-- AgentCreate inserts an agent definition.
INSERT INTO agents (name, description, instructions, model, temperature, max_output_tokens, tools, tool_scope, is_active, created_by,
                    approval_required_tools, max_steps, max_tool_calls, max_total_tokens, output_schema)
VALUES (@name, @description, @instructions, @model, @temperature, @max_output_tokens, @tools, @tool_scope, @is_active, @created_by,
        @approval_required_tools, @max_steps, @max_tool_calls, @max_total_tokens, @output_schema)
RETURNING *;

-- name: AgentGetByID :one
-- AgentGetByID returns one agent.
SELECT * FROM agents WHERE id = @id;

-- name: AgentList :many
-- AgentList returns a page of agents ordered by id, optionally only active ones.
SELECT * FROM agents
WHERE (sqlc.narg(is_active)::boolean IS NULL OR is_active = sqlc.narg(is_active))
ORDER BY id
LIMIT @max_rows OFFSET @skip_rows;

-- name: AgentCount :one
-- AgentCount counts the agents matching AgentList's filter.
SELECT count(*) FROM agents
WHERE (sqlc.narg(is_active)::boolean IS NULL OR is_active = sqlc.narg(is_active));

-- name: AgentUpdate :one
-- AgentUpdate writes every mutable field of an agent whose version still matches.
UPDATE agents SET
    name              = @name,
    description       = @description,
    instructions      = @instructions,
    model             = @model,
    temperature       = @temperature,
    max_output_tokens = @max_output_tokens,
    tools             = @tools,
    tool_scope        = @tool_scope,
    is_active         = @is_active,
    approval_required_tools = @approval_required_tools,
    max_steps         = @max_steps,
    max_tool_calls    = @max_tool_calls,
    max_total_tokens  = @max_total_tokens,
    output_schema     = @output_schema,
    version           = version + 1,
    updated_at        = now()
WHERE id = @id AND version = @version
RETURNING *;

-- name: AgentDelete :execrows
-- AgentDelete removes an agent (and its runs) whose version still matches.
DELETE FROM agents WHERE id = @id AND version = @version;

-- name: AgentDetachUser :many
-- AgentDetachUser clears a user as creator of agents (before the user is deleted) and
-- returns the changed agents' ids.
UPDATE agents SET created_by = NULL, version = version + 1, updated_at = now()
WHERE created_by = @user_id::bigint
RETURNING id;
