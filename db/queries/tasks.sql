-- name: TaskCreate :one
-- TaskCreate inserts a task and returns it; with an audit action or an event id it appends the task's audit and task.created webhook events in the same statement (no transaction of its own).
WITH t AS (
    INSERT INTO tasks (title, description, priority, assignee_id, created_by, due_at, tags, metadata)
    VALUES (@title, @description, @priority, @assignee_id, @created_by, @due_at, @tags, @metadata)
    RETURNING *
), audit AS (
    INSERT INTO audit_events (actor_type, actor_user_id, actor_api_key_id, actor_agent_run_id, action,
        resource_type, resource_id, request_id, ip)
    SELECT sqlc.narg(audit_actor_type)::text, sqlc.narg(audit_actor_user_id)::bigint,
        sqlc.narg(audit_actor_api_key_id)::bigint, sqlc.narg(audit_actor_agent_run_id)::bigint,
        sqlc.narg(audit_action)::text, 'task', t.id, sqlc.narg(audit_request_id)::text, sqlc.narg(audit_ip)::text
    FROM t
    WHERE sqlc.narg(audit_action)::text IS NOT NULL
), event AS (
    -- The task as stored, as an array of its values in task.FromStored's order: half
    -- the size of to_jsonb's object, and the event's row is most of what it writes.
    INSERT INTO webhook_events (msg_id, type, body, source)
    SELECT sqlc.narg(event_msg_id)::text, 'task.created', '',
        jsonb_build_array(t.id, t.title, t.description, t.status, t.priority, t.assignee_id, t.created_by,
            t.due_at, t.tags, t.metadata, t.created_at, t.updated_at, t.completed_at, t.version)
    FROM t
    WHERE sqlc.narg(event_msg_id)::text IS NOT NULL
      AND EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.is_active AND e.events && ARRAY['task.created', '*'])
)
SELECT * FROM t;

-- name: TaskGetByID :one
-- TaskGetByID returns one task.
SELECT * FROM tasks WHERE id = @id;

-- name: TaskUpdate :one
-- TaskUpdate writes every mutable field of a task whose version still matches; no row
-- means the task is gone or another writer changed it first.
UPDATE tasks SET
    title        = @title,
    description  = @description,
    status       = @status,
    priority     = @priority,
    assignee_id  = @assignee_id,
    due_at       = @due_at,
    tags         = @tags,
    metadata     = @metadata,
    completed_at = @completed_at,
    version      = version + 1,
    updated_at   = now()
WHERE id = @id AND version = @version
RETURNING *;

-- name: TaskDelete :execrows
-- TaskDelete removes a task whose version still matches.
DELETE FROM tasks WHERE id = @id AND version = @version;

-- name: TaskList :many
-- TaskList returns a page of tasks matching the optional filters in the requested order.
-- visible_to restricts to tasks a user created or is assigned to; q must be escaped for
-- LIKE. The sort CASEs fold to a plain column under custom plans, so each order is
-- served by its index.
SELECT * FROM tasks
WHERE (sqlc.narg(visible_to)::bigint IS NULL OR created_by = sqlc.narg(visible_to) OR assignee_id = sqlc.narg(visible_to))
  AND (cardinality(sqlc.arg(statuses)::text[]) = 0 OR status = ANY (task_statuses(sqlc.arg(statuses)::text[])))
  AND (sqlc.narg(priority)::task_priority IS NULL OR priority = sqlc.narg(priority))
  AND (sqlc.narg(assignee_id)::bigint IS NULL OR assignee_id = sqlc.narg(assignee_id))
  AND (sqlc.narg(created_by)::bigint IS NULL OR created_by = sqlc.narg(created_by))
  AND (sqlc.narg(tag)::text IS NULL OR tags @> ARRAY[sqlc.narg(tag)::text])
  AND (sqlc.narg(q)::text IS NULL OR title ILIKE '%' || sqlc.narg(q) || '%' OR description ILIKE '%' || sqlc.narg(q) || '%')
  AND (sqlc.narg(due_before)::timestamptz IS NULL OR due_at < sqlc.narg(due_before))
  AND (sqlc.narg(due_after)::timestamptz IS NULL OR due_at > sqlc.narg(due_after))
ORDER BY
    CASE WHEN @sort::text = 'created_at' THEN created_at END ASC,
    CASE WHEN @sort::text = '-created_at' THEN created_at END DESC,
    CASE WHEN @sort::text = 'updated_at' THEN updated_at END ASC,
    CASE WHEN @sort::text = '-updated_at' THEN updated_at END DESC,
    CASE WHEN @sort::text = 'due_at' THEN due_at END ASC NULLS LAST,
    CASE WHEN @sort::text = '-due_at' THEN due_at END DESC NULLS LAST,
    CASE WHEN @sort::text = 'priority' THEN priority END ASC,
    CASE WHEN @sort::text = '-priority' THEN priority END DESC,
    CASE WHEN left(@sort::text, 1) = '-' THEN id END DESC,
    CASE WHEN left(@sort::text, 1) <> '-' THEN id END ASC
LIMIT @max_rows OFFSET @skip_rows;

-- name: TaskCount :one
-- TaskCount counts the tasks matching the same filters as TaskList.
SELECT count(*) FROM tasks
WHERE (sqlc.narg(visible_to)::bigint IS NULL OR created_by = sqlc.narg(visible_to) OR assignee_id = sqlc.narg(visible_to))
  AND (cardinality(sqlc.arg(statuses)::text[]) = 0 OR status = ANY (task_statuses(sqlc.arg(statuses)::text[])))
  AND (sqlc.narg(priority)::task_priority IS NULL OR priority = sqlc.narg(priority))
  AND (sqlc.narg(assignee_id)::bigint IS NULL OR assignee_id = sqlc.narg(assignee_id))
  AND (sqlc.narg(created_by)::bigint IS NULL OR created_by = sqlc.narg(created_by))
  AND (sqlc.narg(tag)::text IS NULL OR tags @> ARRAY[sqlc.narg(tag)::text])
  AND (sqlc.narg(q)::text IS NULL OR title ILIKE '%' || sqlc.narg(q) || '%' OR description ILIKE '%' || sqlc.narg(q) || '%')
  AND (sqlc.narg(due_before)::timestamptz IS NULL OR due_at < sqlc.narg(due_before))
  AND (sqlc.narg(due_after)::timestamptz IS NULL OR due_at > sqlc.narg(due_after));

-- name: TaskCountUpTo :one
-- TaskCountUpTo counts the tasks matching the same filters as TaskList, but stops at
-- @max_rows: large results are not counted row by row.
SELECT count(*) FROM (
    SELECT 1 FROM tasks
    WHERE (sqlc.narg(visible_to)::bigint IS NULL OR created_by = sqlc.narg(visible_to) OR assignee_id = sqlc.narg(visible_to))
      AND (cardinality(sqlc.arg(statuses)::text[]) = 0 OR status = ANY (task_statuses(sqlc.arg(statuses)::text[])))
      AND (sqlc.narg(priority)::task_priority IS NULL OR priority = sqlc.narg(priority))
      AND (sqlc.narg(assignee_id)::bigint IS NULL OR assignee_id = sqlc.narg(assignee_id))
      AND (sqlc.narg(created_by)::bigint IS NULL OR created_by = sqlc.narg(created_by))
      AND (sqlc.narg(tag)::text IS NULL OR tags @> ARRAY[sqlc.narg(tag)::text])
      AND (sqlc.narg(q)::text IS NULL OR title ILIKE '%' || sqlc.narg(q) || '%' OR description ILIKE '%' || sqlc.narg(q) || '%')
      AND (sqlc.narg(due_before)::timestamptz IS NULL OR due_at < sqlc.narg(due_before))
      AND (sqlc.narg(due_after)::timestamptz IS NULL OR due_at > sqlc.narg(due_after))
    LIMIT sqlc.arg(max_rows)::bigint
) AS matching;

-- name: TaskCountSample :one
-- TaskCountSample counts the tasks matching the same filters as TaskList in a 1 % block
-- sample of the table: times 100, an estimate of the total for results too large to count.
SELECT count(*) FROM tasks TABLESAMPLE SYSTEM (1)
WHERE (sqlc.narg(visible_to)::bigint IS NULL OR created_by = sqlc.narg(visible_to) OR assignee_id = sqlc.narg(visible_to))
  AND (cardinality(sqlc.arg(statuses)::text[]) = 0 OR status = ANY (task_statuses(sqlc.arg(statuses)::text[])))
  AND (sqlc.narg(priority)::task_priority IS NULL OR priority = sqlc.narg(priority))
  AND (sqlc.narg(assignee_id)::bigint IS NULL OR assignee_id = sqlc.narg(assignee_id))
  AND (sqlc.narg(created_by)::bigint IS NULL OR created_by = sqlc.narg(created_by))
  AND (sqlc.narg(tag)::text IS NULL OR tags @> ARRAY[sqlc.narg(tag)::text])
  AND (sqlc.narg(q)::text IS NULL OR title ILIKE '%' || sqlc.narg(q) || '%' OR description ILIKE '%' || sqlc.narg(q) || '%')
  AND (sqlc.narg(due_before)::timestamptz IS NULL OR due_at < sqlc.narg(due_before))
  AND (sqlc.narg(due_after)::timestamptz IS NULL OR due_at > sqlc.narg(due_after));

-- name: TaskGetByIDForUpdate :one
-- TaskGetByIDForUpdate returns one task, locked until the transaction ends.
SELECT * FROM tasks WHERE id = @id FOR UPDATE;

-- name: TaskDetachUser :many
-- TaskDetachUser clears a user's references from tasks (before the user is deleted),
-- as a change: each affected task gets a new version. It returns the changed tasks' ids.
UPDATE tasks SET
    created_by  = nullif(created_by, @user_id::bigint),
    assignee_id = nullif(assignee_id, @user_id::bigint),
    version     = version + 1,
    updated_at  = now()
WHERE created_by = @user_id::bigint OR assignee_id = @user_id::bigint
RETURNING id;

-- name: TaskPage :many
-- TaskPage returns a page of tasks matching TaskList's filters in the requested order, after
-- the keyset position (after_time or after_priority, after_id) when after_id is set, and on
-- every row the count of all matching tasks up to @count_limit and, only when that limit is
-- reached, the matches in a 1 % block sample (0 otherwise): count and page in one statement.
-- Run with a custom plan, the unused filters, sort and keyset cases fold away.
WITH counted AS (
    SELECT count(*) AS n FROM (
        SELECT 1 FROM tasks
        WHERE (sqlc.narg(visible_to)::bigint IS NULL OR created_by = sqlc.narg(visible_to) OR assignee_id = sqlc.narg(visible_to))
          AND (cardinality(sqlc.arg(statuses)::text[]) = 0 OR status = ANY (task_statuses(sqlc.arg(statuses)::text[])))
          AND (sqlc.narg(priority)::task_priority IS NULL OR priority = sqlc.narg(priority))
          AND (sqlc.narg(assignee_id)::bigint IS NULL OR assignee_id = sqlc.narg(assignee_id))
          AND (sqlc.narg(created_by)::bigint IS NULL OR created_by = sqlc.narg(created_by))
          AND (sqlc.narg(tag)::text IS NULL OR tags @> ARRAY[sqlc.narg(tag)::text])
          AND (sqlc.narg(q)::text IS NULL OR title ILIKE '%' || sqlc.narg(q) || '%' OR description ILIKE '%' || sqlc.narg(q) || '%')
          AND (sqlc.narg(due_before)::timestamptz IS NULL OR due_at < sqlc.narg(due_before))
          AND (sqlc.narg(due_after)::timestamptz IS NULL OR due_at > sqlc.narg(due_after))
        LIMIT sqlc.arg(count_limit)::bigint
    ) AS matching
)
SELECT sqlc.embed(tasks),
    (SELECT n FROM counted)::bigint AS counted,
    (CASE WHEN (SELECT n FROM counted) < sqlc.arg(count_limit)::bigint THEN 0
          ELSE (SELECT count(*) FROM tasks TABLESAMPLE SYSTEM (1)
                WHERE (sqlc.narg(visible_to)::bigint IS NULL OR created_by = sqlc.narg(visible_to) OR assignee_id = sqlc.narg(visible_to))
                  AND (cardinality(sqlc.arg(statuses)::text[]) = 0 OR status = ANY (task_statuses(sqlc.arg(statuses)::text[])))
                  AND (sqlc.narg(priority)::task_priority IS NULL OR priority = sqlc.narg(priority))
                  AND (sqlc.narg(assignee_id)::bigint IS NULL OR assignee_id = sqlc.narg(assignee_id))
                  AND (sqlc.narg(created_by)::bigint IS NULL OR created_by = sqlc.narg(created_by))
                  AND (sqlc.narg(tag)::text IS NULL OR tags @> ARRAY[sqlc.narg(tag)::text])
                  AND (sqlc.narg(q)::text IS NULL OR title ILIKE '%' || sqlc.narg(q) || '%' OR description ILIKE '%' || sqlc.narg(q) || '%')
                  AND (sqlc.narg(due_before)::timestamptz IS NULL OR due_at < sqlc.narg(due_before))
                  AND (sqlc.narg(due_after)::timestamptz IS NULL OR due_at > sqlc.narg(due_after)))
     END)::bigint AS sampled
FROM tasks
WHERE (sqlc.narg(visible_to)::bigint IS NULL OR created_by = sqlc.narg(visible_to) OR assignee_id = sqlc.narg(visible_to))
  AND (cardinality(sqlc.arg(statuses)::text[]) = 0 OR status = ANY (task_statuses(sqlc.arg(statuses)::text[])))
  AND (sqlc.narg(priority)::task_priority IS NULL OR priority = sqlc.narg(priority))
  AND (sqlc.narg(assignee_id)::bigint IS NULL OR assignee_id = sqlc.narg(assignee_id))
  AND (sqlc.narg(created_by)::bigint IS NULL OR created_by = sqlc.narg(created_by))
  AND (sqlc.narg(tag)::text IS NULL OR tags @> ARRAY[sqlc.narg(tag)::text])
  AND (sqlc.narg(q)::text IS NULL OR title ILIKE '%' || sqlc.narg(q) || '%' OR description ILIKE '%' || sqlc.narg(q) || '%')
  AND (sqlc.narg(due_before)::timestamptz IS NULL OR due_at < sqlc.narg(due_before))
  AND (sqlc.narg(due_after)::timestamptz IS NULL OR due_at > sqlc.narg(due_after))
  AND (sqlc.narg(after_id)::bigint IS NULL
    OR (@sort::text = 'created_at' AND (created_at, id) > (sqlc.narg(after_time)::timestamptz, sqlc.narg(after_id)::bigint))
    OR (@sort::text = '-created_at' AND (created_at, id) < (sqlc.narg(after_time)::timestamptz, sqlc.narg(after_id)::bigint))
    OR (@sort::text = 'updated_at' AND (updated_at, id) > (sqlc.narg(after_time)::timestamptz, sqlc.narg(after_id)::bigint))
    OR (@sort::text = '-updated_at' AND (updated_at, id) < (sqlc.narg(after_time)::timestamptz, sqlc.narg(after_id)::bigint))
    OR (@sort::text = 'due_at' AND (coalesce(due_at, 'infinity'::timestamptz), id)
        > (coalesce(sqlc.narg(after_time)::timestamptz, 'infinity'::timestamptz), sqlc.narg(after_id)::bigint))
    OR (@sort::text = '-due_at' AND (coalesce(due_at, '-infinity'::timestamptz), id)
        < (coalesce(sqlc.narg(after_time)::timestamptz, '-infinity'::timestamptz), sqlc.narg(after_id)::bigint))
    OR (@sort::text = 'priority' AND (priority, id) > (sqlc.narg(after_priority)::task_priority, sqlc.narg(after_id)::bigint))
    OR (@sort::text = '-priority' AND (priority, id) < (sqlc.narg(after_priority)::task_priority, sqlc.narg(after_id)::bigint)))
ORDER BY
    CASE WHEN @sort::text = 'created_at' THEN created_at END ASC,
    CASE WHEN @sort::text = '-created_at' THEN created_at END DESC,
    CASE WHEN @sort::text = 'updated_at' THEN updated_at END ASC,
    CASE WHEN @sort::text = '-updated_at' THEN updated_at END DESC,
    CASE WHEN @sort::text = 'due_at' THEN coalesce(due_at, 'infinity'::timestamptz) END ASC,
    CASE WHEN @sort::text = '-due_at' THEN coalesce(due_at, '-infinity'::timestamptz) END DESC,
    CASE WHEN @sort::text = 'priority' THEN priority END ASC,
    CASE WHEN @sort::text = '-priority' THEN priority END DESC,
    CASE WHEN left(@sort::text, 1) = '-' THEN id END DESC,
    CASE WHEN left(@sort::text, 1) <> '-' THEN id END ASC
LIMIT @max_rows OFFSET @skip_rows;

-- name: TaskPageSkip :many
-- TaskPageSkip is TaskPage without a keyset position, for pages that skip @skip_rows
-- matches: the skipped tasks are read from the order's index alone (the ids in the
-- subquery) and only the page's rows from the table, by primary key.
WITH counted AS (
    SELECT count(*) AS n FROM (
        SELECT 1 FROM tasks
        WHERE (sqlc.narg(visible_to)::bigint IS NULL OR created_by = sqlc.narg(visible_to) OR assignee_id = sqlc.narg(visible_to))
          AND (cardinality(sqlc.arg(statuses)::text[]) = 0 OR status = ANY (task_statuses(sqlc.arg(statuses)::text[])))
          AND (sqlc.narg(priority)::task_priority IS NULL OR priority = sqlc.narg(priority))
          AND (sqlc.narg(assignee_id)::bigint IS NULL OR assignee_id = sqlc.narg(assignee_id))
          AND (sqlc.narg(created_by)::bigint IS NULL OR created_by = sqlc.narg(created_by))
          AND (sqlc.narg(tag)::text IS NULL OR tags @> ARRAY[sqlc.narg(tag)::text])
          AND (sqlc.narg(q)::text IS NULL OR title ILIKE '%' || sqlc.narg(q) || '%' OR description ILIKE '%' || sqlc.narg(q) || '%')
          AND (sqlc.narg(due_before)::timestamptz IS NULL OR due_at < sqlc.narg(due_before))
          AND (sqlc.narg(due_after)::timestamptz IS NULL OR due_at > sqlc.narg(due_after))
        LIMIT sqlc.arg(count_limit)::bigint
    ) AS matching
)
SELECT sqlc.embed(tasks),
    (SELECT n FROM counted)::bigint AS counted,
    (CASE WHEN (SELECT n FROM counted) < sqlc.arg(count_limit)::bigint THEN 0
          ELSE (SELECT count(*) FROM tasks TABLESAMPLE SYSTEM (1)
                WHERE (sqlc.narg(visible_to)::bigint IS NULL OR created_by = sqlc.narg(visible_to) OR assignee_id = sqlc.narg(visible_to))
                  AND (cardinality(sqlc.arg(statuses)::text[]) = 0 OR status = ANY (task_statuses(sqlc.arg(statuses)::text[])))
                  AND (sqlc.narg(priority)::task_priority IS NULL OR priority = sqlc.narg(priority))
                  AND (sqlc.narg(assignee_id)::bigint IS NULL OR assignee_id = sqlc.narg(assignee_id))
                  AND (sqlc.narg(created_by)::bigint IS NULL OR created_by = sqlc.narg(created_by))
                  AND (sqlc.narg(tag)::text IS NULL OR tags @> ARRAY[sqlc.narg(tag)::text])
                  AND (sqlc.narg(q)::text IS NULL OR title ILIKE '%' || sqlc.narg(q) || '%' OR description ILIKE '%' || sqlc.narg(q) || '%')
                  AND (sqlc.narg(due_before)::timestamptz IS NULL OR due_at < sqlc.narg(due_before))
                  AND (sqlc.narg(due_after)::timestamptz IS NULL OR due_at > sqlc.narg(due_after)))
     END)::bigint AS sampled
FROM tasks
WHERE tasks.id IN (
    SELECT p.id FROM tasks AS p
    WHERE (sqlc.narg(visible_to)::bigint IS NULL OR p.created_by = sqlc.narg(visible_to) OR p.assignee_id = sqlc.narg(visible_to))
      AND (cardinality(sqlc.arg(statuses)::text[]) = 0 OR p.status = ANY (task_statuses(sqlc.arg(statuses)::text[])))
      AND (sqlc.narg(priority)::task_priority IS NULL OR p.priority = sqlc.narg(priority))
      AND (sqlc.narg(assignee_id)::bigint IS NULL OR p.assignee_id = sqlc.narg(assignee_id))
      AND (sqlc.narg(created_by)::bigint IS NULL OR p.created_by = sqlc.narg(created_by))
      AND (sqlc.narg(tag)::text IS NULL OR p.tags @> ARRAY[sqlc.narg(tag)::text])
      AND (sqlc.narg(q)::text IS NULL OR p.title ILIKE '%' || sqlc.narg(q) || '%' OR p.description ILIKE '%' || sqlc.narg(q) || '%')
      AND (sqlc.narg(due_before)::timestamptz IS NULL OR p.due_at < sqlc.narg(due_before))
      AND (sqlc.narg(due_after)::timestamptz IS NULL OR p.due_at > sqlc.narg(due_after))
    ORDER BY
        CASE WHEN @sort::text = 'created_at' THEN p.created_at END ASC,
        CASE WHEN @sort::text = '-created_at' THEN p.created_at END DESC,
        CASE WHEN @sort::text = 'updated_at' THEN p.updated_at END ASC,
        CASE WHEN @sort::text = '-updated_at' THEN p.updated_at END DESC,
        CASE WHEN @sort::text = 'due_at' THEN coalesce(p.due_at, 'infinity'::timestamptz) END ASC,
        CASE WHEN @sort::text = '-due_at' THEN coalesce(p.due_at, '-infinity'::timestamptz) END DESC,
        CASE WHEN @sort::text = 'priority' THEN p.priority END ASC,
        CASE WHEN @sort::text = '-priority' THEN p.priority END DESC,
        CASE WHEN left(@sort::text, 1) = '-' THEN p.id END DESC,
        CASE WHEN left(@sort::text, 1) <> '-' THEN p.id END ASC
    LIMIT @max_rows OFFSET @skip_rows
)
ORDER BY
    CASE WHEN @sort::text = 'created_at' THEN created_at END ASC,
    CASE WHEN @sort::text = '-created_at' THEN created_at END DESC,
    CASE WHEN @sort::text = 'updated_at' THEN updated_at END ASC,
    CASE WHEN @sort::text = '-updated_at' THEN updated_at END DESC,
    CASE WHEN @sort::text = 'due_at' THEN coalesce(due_at, 'infinity'::timestamptz) END ASC,
    CASE WHEN @sort::text = '-due_at' THEN coalesce(due_at, '-infinity'::timestamptz) END DESC,
    CASE WHEN @sort::text = 'priority' THEN priority END ASC,
    CASE WHEN @sort::text = '-priority' THEN priority END DESC,
    CASE WHEN left(@sort::text, 1) = '-' THEN id END DESC,
    CASE WHEN left(@sort::text, 1) <> '-' THEN id END ASC;
