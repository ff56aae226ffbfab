-- name: AuditEventCreate :exec
-- AuditEventCreate appends one audit event (in the caller's transaction).
INSERT INTO audit_events (actor_type, actor_user_id, actor_api_key_id, actor_agent_run_id, action,
    resource_type, resource_id, request_id, ip, changes)
VALUES (@actor_type, sqlc.narg(actor_user_id), sqlc.narg(actor_api_key_id), sqlc.narg(actor_agent_run_id), @action,
    @resource_type, sqlc.narg(resource_id), sqlc.narg(request_id), sqlc.narg(ip), sqlc.narg(changes));

-- name: AuditEventList :many
-- AuditEventList returns matching events newest first, those older than the cursor id
-- (keyset: stable while events are appended).
SELECT * FROM audit_events
WHERE (sqlc.narg(before_id)::bigint IS NULL OR id < sqlc.narg(before_id))
  AND (sqlc.narg(actor_user_id)::bigint IS NULL OR actor_user_id = sqlc.narg(actor_user_id))
  AND (sqlc.narg(action)::text IS NULL OR action = sqlc.narg(action))
  AND (sqlc.narg(resource_type)::text IS NULL OR resource_type = sqlc.narg(resource_type))
  AND (sqlc.narg(resource_id)::bigint IS NULL OR resource_id = sqlc.narg(resource_id))
  AND (sqlc.narg(since)::timestamptz IS NULL OR occurred_at >= sqlc.narg(since))
  AND (sqlc.narg(until)::timestamptz IS NULL OR occurred_at < sqlc.narg(until))
ORDER BY id DESC
LIMIT @max_rows;

-- name: AuditEventDeleteBefore :execrows
-- AuditEventDeleteBefore removes events older than cutoff; the trigger allows it only in a
-- transaction that set audit.retention (AuditEventAllowRetention).
DELETE FROM audit_events WHERE occurred_at < @cutoff;

-- name: AuditEventAllowRetention :exec
-- AuditEventAllowRetention lets the current transaction delete old events.
SELECT set_config('audit.retention', 'on', true);
