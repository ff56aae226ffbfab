-- name: AgentRunCreate :many
-- AgentRunCreate inserts queued runs, each with its first event (run.status "queued") and
-- its audit event, in one statement. The arrays are parallel, one element per run; a task
-- id of 0, a token budget of 0 and an empty output schema mean none; an empty audit
-- actor type records no audit event, and an audit actor id of 0 or an empty request id
-- or IP means none. The runs are inserted in input order, so their ids ascend in it (their audit
-- events too), and they are returned by id. Nothing can be listening for a run that did
-- not exist, so nobody is notified.
WITH input AS (
    SELECT unnest(@agent_ids::bigint[])                              AS agent_id,
           unnest(@task_ids::bigint[])                               AS task_id,
           unnest(@inputs::text[])                                   AS input,
           unnest(@models::text[])                                   AS model,
           unnest(@metadata::jsonb[])                                AS metadata,
           unnest(@created_by::bigint[])                             AS created_by,
           unnest(@max_steps::int[])                                 AS max_steps,
           unnest(@max_tool_calls::int[])                            AS max_tool_calls,
           unnest(@max_total_tokens::bigint[])                       AS max_total_tokens,
           unnest(@output_schemas::text[])                           AS output_schema,
           unnest(@audit_actions::text[])                            AS audit_action,
           unnest(@audit_actor_types::text[])                        AS audit_actor_type,
           unnest(@audit_actor_user_ids::bigint[])                   AS audit_actor_user_id,
           unnest(@audit_actor_api_key_ids::bigint[])                AS audit_actor_api_key_id,
           unnest(@audit_actor_agent_run_ids::bigint[])              AS audit_actor_agent_run_id,
           unnest(@audit_request_ids::text[])                        AS audit_request_id,
           unnest(@audit_ips::text[])                                AS audit_ip,
           generate_series(1, cardinality(@agent_ids::bigint[]))     AS ord
), run AS (
    INSERT INTO agent_runs (agent_id, task_id, input, model, metadata, created_by, max_steps, max_tool_calls,
                            max_total_tokens, output_schema)
    SELECT agent_id, nullif(task_id, 0), input, model, metadata, created_by, max_steps, max_tool_calls,
           nullif(max_total_tokens, 0), nullif(output_schema, '')::jsonb
    FROM input ORDER BY ord
    RETURNING *
), ev AS (
    INSERT INTO agent_run_events (run_id, seq, type, data)
    SELECT run.id, 1, 'run.status',
           jsonb_build_object('type', 'run.status', 'run_id', run.id, 'status', run.status, 'attempt', 0)
    FROM run
    RETURNING run_id
), audit AS (
    INSERT INTO audit_events (actor_type, actor_user_id, actor_api_key_id, actor_agent_run_id, action,
                              resource_type, resource_id, request_id, ip)
    SELECT i.audit_actor_type, nullif(i.audit_actor_user_id, 0), nullif(i.audit_actor_api_key_id, 0),
           nullif(i.audit_actor_agent_run_id, 0), i.audit_action, 'agent_run', r.id,
           nullif(i.audit_request_id, ''), nullif(i.audit_ip, '')
    FROM (SELECT id, row_number() OVER (ORDER BY id) AS ord FROM run) r
    JOIN input i ON i.ord = r.ord
    WHERE i.audit_actor_type <> ''
    ORDER BY r.ord
)
SELECT run.* FROM run ORDER BY run.id;

-- name: AgentRunLockCreators :exec
-- AgentRunLockCreators takes each user's run-quota lock until the transaction ends, so
-- that concurrent creations for one user count and insert one after another; user_ids
-- must be sorted and distinct (one lock order everywhere: no deadlocks).
SELECT pg_advisory_xact_lock(hashtextextended('agent_run_quota:' || u.id::text, 0))
FROM unnest(@user_ids::bigint[]) WITH ORDINALITY AS u (id, ord)
ORDER BY u.ord;

-- name: AgentRunCountActiveByCreators :many
-- AgentRunCountActiveByCreators counts the runs of each given user that are queued, in
-- progress or waiting for an approval (users without any are left out).
SELECT created_by::bigint AS user_id, count(*) AS active
FROM agent_runs
WHERE created_by = ANY(@user_ids::bigint[]) AND status IN ('queued', 'in_progress', 'requires_action')
GROUP BY created_by;

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
-- AgentRunSaveProgress stores the usage so far and the count of failed model calls of
-- the current turn, so a retry resumes from them (the steps are saved one by one).
UPDATE agent_runs SET
    llm_failures      = @llm_failures,
    model_turns       = @model_turns,
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

-- name: AgentRunStart :many
-- AgentRunStart marks runs in progress for a new attempt, records the queue job running
-- each, and appends each one's run.status event (waking its streams): one statement for
-- a batch of runs. Only the run's current job may start it (a run queued by its creation
-- has none yet): a stale job (rescued after it had queued the next turn) is left out, as
-- are runs that are not queued or in progress. The event is appended only when the
-- status or the attempt changes, not for every turn.
WITH input AS (
    SELECT unnest(@ids::bigint[])      AS id,
           unnest(@attempts::int[])    AS attempt,
           unnest(@job_ids::bigint[])  AS job_id
), prev AS (
    SELECT r.id, r.status, r.attempt FROM agent_runs r JOIN input i ON i.id = r.id
), started AS (
    UPDATE agent_runs r SET
        status     = 'in_progress',
        attempt    = i.attempt,
        job_id     = i.job_id,
        started_at = coalesce(r.started_at, now()),
        updated_at = now()
    FROM input i
    WHERE r.id = i.id AND r.status IN ('queued', 'in_progress') AND (r.job_id IS NULL OR r.job_id = i.job_id)
    RETURNING r.*
), ev AS (
    INSERT INTO agent_run_events (run_id, seq, type, data)
    SELECT s.id,
           (SELECT coalesce(max(e.seq), 0) + 1 FROM agent_run_events e WHERE e.run_id = s.id),
           'run.status',
           jsonb_build_object('type', 'run.status', 'run_id', s.id, 'status', s.status, 'attempt', s.attempt)
    FROM started s JOIN prev p ON p.id = s.id
    WHERE p.status <> 'in_progress' OR p.attempt <> s.attempt
    RETURNING run_id
)
SELECT started.* FROM started
CROSS JOIN LATERAL (SELECT pg_notify('agent_run_events', started.id::text)) AS notify;

-- name: AgentRunFinish :many
-- AgentRunFinish moves runs that are not yet finished into a terminal status and appends
-- to each, in order, its last output delta (when not empty) and its terminal event
-- run.<status>, waking its streams: one statement for a batch of runs. The arrays are
-- parallel, one element per run; has_outputs says which outputs are set, and an empty
-- error code, output_json or incomplete_reason means none. The run's steps are kept as
-- recorded, and model_turns never goes down. Runs that have already ended are left out of the result.
WITH input AS (
    SELECT unnest(@ids::bigint[])                  AS id,
           unnest(@statuses::text[])               AS status,
           unnest(@has_outputs::boolean[])         AS has_output,
           unnest(@outputs::text[])                AS output,
           unnest(@error_codes::text[])            AS error_code,
           unnest(@error_messages::text[])         AS error_message,
           unnest(@prompt_tokens::bigint[])        AS prompt_tokens,
           unnest(@completion_tokens::bigint[])    AS completion_tokens,
           unnest(@total_tokens::bigint[])         AS total_tokens,
           unnest(@cached_completions::bigint[])   AS cached_completions,
           unnest(@deltas::text[])                 AS delta,
           unnest(@output_jsons::text[])           AS output_json,
           unnest(@incomplete_reasons::text[])     AS incomplete_reason,
           unnest(@model_turns::int[])             AS model_turns
), done AS (
    UPDATE agent_runs r SET
        status             = i.status::agent_run_status,
        output             = CASE WHEN i.has_output THEN i.output END,
        error_code         = nullif(i.error_code, ''),
        error_message      = CASE WHEN i.error_code <> '' THEN i.error_message END,
        prompt_tokens      = i.prompt_tokens,
        completion_tokens  = i.completion_tokens,
        total_tokens       = i.total_tokens,
        cached_completions = i.cached_completions,
        output_json        = nullif(i.output_json, '')::jsonb,
        incomplete_reason  = nullif(i.incomplete_reason, ''),
        model_turns        = greatest(r.model_turns, i.model_turns),
        pending_tool_calls = '[]',
        required_action    = NULL,
        expires_at         = NULL,
        completed_at       = now(),
        updated_at         = now()
    FROM input i
    WHERE r.id = i.id AND r.status IN ('queued', 'in_progress', 'requires_action')
    RETURNING r.*
), last AS (
    SELECT d.id, d.status, i.delta,
           (SELECT coalesce(max(e.seq), 0) FROM agent_run_events e WHERE e.run_id = d.id) AS seq
    FROM done d JOIN input i ON i.id = d.id
), delta AS (
    INSERT INTO agent_run_events (run_id, seq, type, data)
    SELECT l.id, l.seq + 1, 'run.output.delta',
           jsonb_build_object('type', 'run.output.delta', 'run_id', l.id, 'delta', l.delta)
    FROM last l
    WHERE l.delta <> ''
    RETURNING run_id
), terminal AS (
    INSERT INTO agent_run_events (run_id, seq, type, data)
    SELECT l.id, l.seq + CASE WHEN l.delta <> '' THEN 2 ELSE 1 END, 'run.' || l.status::text,
           jsonb_build_object('type', 'run.' || l.status::text, 'run_id', l.id, 'status', l.status)
    FROM last l
    RETURNING run_id
)
SELECT done.* FROM done
CROSS JOIN LATERAL (SELECT pg_notify('agent_run_events', done.id::text)) AS notify;


-- name: AgentRunToolCallClaim :execrows
-- AgentRunToolCallClaim records that a tool call of a run's turn is being executed, in
-- the transaction of its effect: 0 rows when it was recorded already (it must not run
-- again). A concurrent claim of the same call waits for the first to commit or roll back.
INSERT INTO agent_run_tool_calls (run_id, turn, call_id) VALUES (@run_id, @turn, @call_id)
ON CONFLICT DO NOTHING;

-- name: AgentRunAppendStep :exec
-- AgentRunAppendStep adds a recorded tool call to a run's steps, and counts it when it
-- was executed or decided (not when refused beyond the per-turn limit).
UPDATE agent_runs SET steps = steps || jsonb_build_array(@step::jsonb),
    tool_calls = tool_calls + CASE WHEN @counted::boolean THEN 1 ELSE 0 END, updated_at = now()
WHERE id = @id;

-- name: AgentRunSaveTurn :one
-- AgentRunSaveTurn checkpoints a model turn of a run in progress: its usage so far, the
-- tool calls the model asked for (to execute before the next turn), and the task as the
-- first turn gave it to the model (kept from then on).
UPDATE agent_runs SET
    pending_tool_calls = @pending_tool_calls,
    task_context       = coalesce(task_context, sqlc.narg(task_context)),
    model_turns        = @model_turns,
    llm_failures       = 0,
    prompt_tokens      = @prompt_tokens,
    completion_tokens  = @completion_tokens,
    total_tokens       = @total_tokens,
    cached_completions = @cached_completions,
    updated_at         = now()
WHERE id = @id AND status = 'in_progress'
RETURNING *;

-- name: AgentRunContinue :one
-- AgentRunContinue hands a run in progress to the job of its next turn, once its current
-- turn's tool calls are done.
UPDATE agent_runs SET pending_tool_calls = '[]', job_id = @job_id, updated_at = now()
WHERE id = @id AND status = 'in_progress'
RETURNING *;

-- name: AgentRunRequireAction :one
-- AgentRunRequireAction stops a run in progress to wait for approvals until expires_at.
UPDATE agent_runs SET status = 'requires_action', required_action = @required_action, expires_at = @expires_at,
    job_id = NULL, updated_at = now()
WHERE id = @id AND status = 'in_progress'
RETURNING *;

-- name: AgentRunResume :one
-- AgentRunResume queues a waiting run again with its decided tool calls, for the job given.
UPDATE agent_runs SET status = 'queued', pending_tool_calls = @pending_tool_calls, required_action = NULL,
    expires_at = NULL, job_id = @job_id, updated_at = now()
WHERE id = @id AND status = 'requires_action'
RETURNING *;

-- name: AgentRunPage :many
-- AgentRunPage returns a page of runs, newest first, matching AgentRunList's filters and
-- older than before_id when it is set, each row with the count of all matching runs:
-- count and page in one statement.
SELECT sqlc.embed(agent_runs),
    (SELECT count(*) FROM agent_runs
     WHERE (sqlc.narg(created_by)::bigint IS NULL OR created_by = sqlc.narg(created_by))
       AND (sqlc.narg(agent_id)::bigint IS NULL OR agent_id = sqlc.narg(agent_id))
       AND (sqlc.narg(task_id)::bigint IS NULL OR task_id = sqlc.narg(task_id))
       AND (sqlc.narg(status)::text IS NULL OR status = sqlc.narg(status)::text::agent_run_status))::bigint AS total
FROM agent_runs
WHERE (sqlc.narg(created_by)::bigint IS NULL OR created_by = sqlc.narg(created_by))
  AND (sqlc.narg(agent_id)::bigint IS NULL OR agent_id = sqlc.narg(agent_id))
  AND (sqlc.narg(task_id)::bigint IS NULL OR task_id = sqlc.narg(task_id))
  AND (sqlc.narg(status)::text IS NULL OR status = sqlc.narg(status)::text::agent_run_status)
  AND (sqlc.narg(before_id)::bigint IS NULL OR agent_runs.id < sqlc.narg(before_id))
ORDER BY agent_runs.id DESC
LIMIT @max_rows OFFSET @skip_rows;
