-- +goose Up
-- Converts a text[] of status names to task_status[]. The plain cast is not folded at
-- plan time (enum input is only stable), which leaves the planner guessing that a status
-- filter matches most rows; declared immutable, the conversion folds to a constant under
-- custom plans and the status index is used. The enum's labels are never renamed.
-- +goose StatementBegin
CREATE FUNCTION task_statuses(names text[]) RETURNS task_status[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT names::task_status[]
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION task_statuses(text[]);
