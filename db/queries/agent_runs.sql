-- name: AgentRunCreate :one
-- AgentRunCreate inserts a queued run.
INSERT INTO agent_runs (agent_id, task_id, input, model, metadata, created_by)
VALUES (@agent_id, @task_id, @input, @model, @metadata, @created_by)
RETURNING *;

-- name: AgentRunSetJob :exec
-- AgentRunSetJob records the queue job that executes a run.
UPDATE agent_runs SET job_id = @job_id WHERE id = @id;

-- name: AgentRunGetByID :one
-- AgentRunGetByID returns one run.
SELECT * FROM agent_runs WHERE id = @id;

-- name: AgentRunGetByIDForUpdate :one
-- AgentRunGetByIDForUpdate returns one run, locked until the transaction ends.
SELECT * FROM agent_runs WHERE id = @id FOR UPDATE;

-- name: AgentRunList :many
-- AgentRunList returns a page of runs, newest first, matching the optional filters;
-- created_by restricts to one user's runs.
SELECT * FROM agent_runs
WHERE (sqlc.narg(created_by)::bigint IS NULL OR created_by = sqlc.narg(created_by))
  AND (sqlc.narg(agent_id)::bigint IS NULL OR agent_id = sqlc.narg(agent_id))
  AND (sqlc.narg(task_id)::bigint IS NULL OR task_id = sqlc.narg(task_id))
  AND (sqlc.narg(status)::text IS NULL OR status = sqlc.narg(status)::text::agent_run_status)
ORDER BY id DESC
LIMIT @max_rows OFFSET @skip_rows;

-- name: AgentRunCount :one
-- AgentRunCount counts the runs matching AgentRunList's filters.
SELECT count(*) FROM agent_runs
WHERE (sqlc.narg(created_by)::bigint IS NULL OR created_by = sqlc.narg(created_by))
  AND (sqlc.narg(agent_id)::bigint IS NULL OR agent_id = sqlc.narg(agent_id))
  AND (sqlc.narg(task_id)::bigint IS NULL OR task_id = sqlc.narg(task_id))
  AND (sqlc.narg(status)::text IS NULL OR status = sqlc.narg(status)::text::agent_run_status);

-- name: AgentRunSaveProgress :exec
-- AgentRunSaveProgress stores the steps and usage so far, so a retry resumes from them.
UPDATE agent_runs SET
    steps             = @steps,
    prompt_tokens     = @prompt_tokens,
    completion_tokens = @completion_tokens,
    total_tokens      = @total_tokens,
    cached_completions = @cached_completions,
    updated_at        = now()
WHERE id = @id;

-- name: AgentRunRequestCancel :one
-- AgentRunRequestCancel records that a run should stop.
UPDATE agent_runs SET cancel_requested_at = coalesce(cancel_requested_at, now()), updated_at = now()
WHERE id = @id
RETURNING *;

-- name: AgentRunEventAppend :one
-- AgentRunEventAppend adds the next event of a run and wakes every stream listening for
-- the run, on any server (the notification is delivered when the transaction commits).
WITH next AS (
    SELECT coalesce(max(seq), 0) + 1 AS seq FROM agent_run_events WHERE run_id = sqlc.arg(run_id)::bigint
), ins AS (
    INSERT INTO agent_run_events (run_id, seq, type, data)
    SELECT sqlc.arg(run_id)::bigint, next.seq, sqlc.arg(type)::text, sqlc.arg(data)::jsonb FROM next
    RETURNING seq
)
SELECT ins.seq FROM ins
CROSS JOIN LATERAL (SELECT pg_notify('agent_run_events', sqlc.arg(run_id)::bigint::text)) AS notify;

-- name: AgentRunEventsAfter :many
-- AgentRunEventsAfter returns a run's events after the given sequence number, in order.
SELECT * FROM agent_run_events WHERE run_id = @run_id AND seq > @after ORDER BY seq LIMIT 1000;

-- name: AgentRunStart :one
-- AgentRunStart marks a run in progress for a new attempt and appends its
-- run.status event (waking the run's streams), in one statement. No row when the run
-- has already ended.
WITH started AS (
    UPDATE agent_runs SET
        status     = 'in_progress',
        attempt    = @attempt,
        started_at = coalesce(started_at, now()),
        updated_at = now()
    WHERE id = @id AND status IN ('queued', 'in_progress')
    RETURNING *
), ev AS (
    INSERT INTO agent_run_events (run_id, seq, type, data)
    SELECT s.id,
           (SELECT coalesce(max(e.seq), 0) + 1 FROM agent_run_events e WHERE e.run_id = s.id),
           'run.status',
           jsonb_build_object('type', 'run.status', 'run_id', s.id, 'status', s.status, 'attempt', s.attempt)
    FROM started s
    RETURNING run_id
)
SELECT started.* FROM started
CROSS JOIN LATERAL (SELECT pg_notify('agent_run_events', started.id::text)) AS notify;

-- name: AgentRunFinish :one
-- AgentRunFinish moves a run that is not yet finished into a terminal status and
-- appends, in order, the last output delta (when @delta is not empty) and the terminal
-- event run.<status>, waking the run's streams: one statement, so one round trip.
WITH done AS (
    UPDATE agent_runs SET
        status             = @status,
        output             = @output,
        steps              = @steps,
        error_code         = @error_code,
        error_message      = @error_message,
        prompt_tokens      = @prompt_tokens,
        completion_tokens  = @completion_tokens,
        total_tokens       = @total_tokens,
        cached_completions = @cached_completions,
        completed_at       = now(),
        updated_at         = now()
    WHERE id = @id AND status IN ('queued', 'in_progress')
    RETURNING *
), last AS (
    SELECT coalesce(max(e.seq), 0) AS seq FROM agent_run_events e WHERE e.run_id = @id
), delta AS (
    INSERT INTO agent_run_events (run_id, seq, type, data)
    SELECT d.id, last.seq + 1, 'run.output.delta',
           jsonb_build_object('type', 'run.output.delta', 'run_id', d.id, 'delta', sqlc.arg(delta)::text)
    FROM done d, last
    WHERE sqlc.arg(delta)::text <> ''
    RETURNING run_id
), terminal AS (
    INSERT INTO agent_run_events (run_id, seq, type, data)
    SELECT d.id, last.seq + CASE WHEN sqlc.arg(delta)::text <> '' THEN 2 ELSE 1 END, 'run.' || d.status::text,
           jsonb_build_object('type', 'run.' || d.status::text, 'run_id', d.id, 'status', d.status)
    FROM done d, last
    RETURNING run_id
)
SELECT done.* FROM done
CROSS JOIN LATERAL (SELECT pg_notify('agent_run_events', done.id::text)) AS notify;
