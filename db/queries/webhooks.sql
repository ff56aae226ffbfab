-- name: WebhookCreate :one
-- WebhookCreate stores a new endpoint with its signing secret.
INSERT INTO webhook_endpoints (url, description, events, is_active, secret)
VALUES (@url, @description, @events, @is_active, @secret)
RETURNING *;

-- name: WebhookGetByID :one
-- WebhookGetByID returns one endpoint.
SELECT * FROM webhook_endpoints WHERE id = @id;

-- name: WebhookGetByIDForUpdate :one
-- WebhookGetByIDForUpdate returns one endpoint and locks it for the rest of the transaction.
SELECT * FROM webhook_endpoints WHERE id = @id FOR UPDATE;

-- name: WebhookList :many
-- WebhookList returns a page of endpoints, newest first.
SELECT * FROM webhook_endpoints ORDER BY id DESC LIMIT @max_rows OFFSET @skip_rows;

-- name: WebhookCount :one
-- WebhookCount counts the endpoints WebhookList pages through.
SELECT count(*) FROM webhook_endpoints;

-- name: WebhookUpdate :one
-- WebhookUpdate writes an endpoint's editable fields and moves its version on.
UPDATE webhook_endpoints
SET url = @url, description = @description, events = @events, is_active = @is_active,
    disabled_reason = CASE WHEN @is_active::boolean THEN NULL ELSE disabled_reason END,
    version = version + 1, updated_at = now()
WHERE id = @id
RETURNING *;

-- name: WebhookRotateSecret :one
-- WebhookRotateSecret replaces the secret; the old one keeps signing until previous_expires_at.
UPDATE webhook_endpoints
SET previous_secret = secret, previous_secret_expires_at = @previous_expires_at, secret = @secret,
    version = version + 1, updated_at = now()
WHERE id = @id
RETURNING *;

-- name: WebhookDisable :exec
-- WebhookDisable deactivates an endpoint on the system's behalf, saying why.
UPDATE webhook_endpoints
SET is_active = false, disabled_reason = @reason, version = version + 1, updated_at = now()
WHERE id = @id AND is_active;

-- name: WebhookDelete :execrows
-- WebhookDelete removes an endpoint and, by cascade, its deliveries.
DELETE FROM webhook_endpoints WHERE id = @id;

-- name: WebhookEventEmit :execrows
-- WebhookEventEmit records an event in the caller's transaction (the outbox) when some
-- active endpoint is subscribed to its type; the dispatcher writes its deliveries.
INSERT INTO webhook_events (msg_id, type, body)
SELECT @msg_id, @type, @body
WHERE EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.is_active AND e.events && ARRAY[@type::text, '*']);

-- name: WebhookEventEmitTo :one
-- WebhookEventEmitTo records an event, already dispatched, and one pending delivery to one endpoint.
WITH ev AS (
    INSERT INTO webhook_events (msg_id, type, body, dispatched_at) VALUES (@msg_id, @type, @body, now()) RETURNING id
)
INSERT INTO webhook_deliveries (endpoint_id, event_id)
SELECT @endpoint_id, ev.id FROM ev
RETURNING id;

-- name: WebhookEventClaim :many
-- WebhookEventClaim marks up to max_rows undispatched events dispatched, oldest first,
-- skipping those another dispatcher holds, and returns them (source: the body is to render).
UPDATE webhook_events SET dispatched_at = now()
WHERE id IN (
    SELECT id FROM webhook_events WHERE dispatched_at IS NULL
    ORDER BY id LIMIT @max_rows FOR UPDATE SKIP LOCKED
)
RETURNING id, type, source, created_at;

-- name: WebhookDeliveryFanOut :many
-- WebhookDeliveryFanOut writes one pending delivery per event and active endpoint that
-- was subscribed to its type when it was recorded.
INSERT INTO webhook_deliveries (endpoint_id, event_id)
SELECT e.id, ev.id
FROM webhook_events ev
JOIN webhook_endpoints e ON e.is_active AND e.events && ARRAY[ev.type, '*'] AND e.created_at <= ev.created_at
WHERE ev.id = ANY(@event_ids::bigint[])
ORDER BY ev.id, e.id
-- An event whose deliveries exist already (written with the change by a 2.0 process
-- during a rolling upgrade) gets no second one, and does not hold up its batch.
ON CONFLICT (event_id, endpoint_id) DO NOTHING
RETURNING id;

-- name: WebhookDeliveryList :many
-- WebhookDeliveryList returns a page of an endpoint's deliveries, newest first, with their events.
SELECT d.*, ev.msg_id, ev.type AS event_type
FROM webhook_deliveries d JOIN webhook_events ev ON ev.id = d.event_id
WHERE d.endpoint_id = @endpoint_id
  AND (sqlc.narg('status')::text IS NULL OR d.status = sqlc.narg('status'))
ORDER BY d.id DESC
LIMIT @max_rows OFFSET @skip_rows;

-- name: WebhookDeliveryCount :one
-- WebhookDeliveryCount counts the deliveries WebhookDeliveryList pages through.
SELECT count(*) FROM webhook_deliveries
WHERE endpoint_id = @endpoint_id
  AND (sqlc.narg('status')::text IS NULL OR status = sqlc.narg('status'));

-- name: WebhookDeliveryGet :one
-- WebhookDeliveryGet returns one delivery of an endpoint with its event.
SELECT d.*, ev.msg_id, ev.type AS event_type
FROM webhook_deliveries d JOIN webhook_events ev ON ev.id = d.event_id
WHERE d.id = @id AND d.endpoint_id = @endpoint_id;

-- name: WebhookDeliveryForAttempt :one
-- WebhookDeliveryForAttempt returns what an attempt needs: the delivery, its event's body
-- and its endpoint's URL, state and secrets.
SELECT d.id, d.status, d.attempts, d.endpoint_id, ev.msg_id, ev.type AS event_type, ev.body,
    ev.created_at AS event_created_at, e.url, e.is_active, e.secret, e.previous_secret, e.previous_secret_expires_at
FROM webhook_deliveries d
JOIN webhook_events ev ON ev.id = d.event_id
JOIN webhook_endpoints e ON e.id = d.endpoint_id
WHERE d.id = @id;

-- name: WebhookDeliveryRecord :exec
-- WebhookDeliveryRecord stores the outcomes of attempts, one per delivery (ids: theirs, so
-- that the rows are found by index): a JSON array of {id, status, last_status_code,
-- last_error, last_response_body, next_attempt_at}.
UPDATE webhook_deliveries d
SET status = r.status, attempts = d.attempts + 1, last_status_code = r.last_status_code,
    last_error = r.last_error, last_response_body = r.last_response_body,
    next_attempt_at = r.next_attempt_at,
    delivered_at = CASE WHEN r.status = 'succeeded' THEN now() ELSE d.delivered_at END
FROM jsonb_to_recordset(@outcomes::jsonb) AS r(id bigint, status text, last_status_code integer,
    last_error text, last_response_body text, next_attempt_at timestamptz)
WHERE d.id = ANY(@ids::bigint[]) AND d.id = r.id;

-- name: WebhookDeliveryReset :one
-- WebhookDeliveryReset puts a delivery back to pending for a redelivery (attempts start over).
UPDATE webhook_deliveries
SET status = 'pending', attempts = 0, next_attempt_at = NULL
WHERE id = @id AND endpoint_id = @endpoint_id
RETURNING id;

-- name: WebhookDeliveryDepth :many
-- WebhookDeliveryDepth counts the unfinished deliveries of each endpoint (metrics).
SELECT endpoint_id, count(*) AS deliveries FROM webhook_deliveries
WHERE status IN ('pending', 'retrying')
GROUP BY endpoint_id;

-- name: WebhookSubscribedTypes :many
-- WebhookSubscribedTypes lists the event types (or "*") some active endpoint receives.
SELECT DISTINCT unnest(events)::text AS event_type FROM webhook_endpoints WHERE is_active;

-- name: WebhookEventSetBodies :exec
-- WebhookEventSetBodies stores the rendered bodies of events recorded with their source row.
UPDATE webhook_events ev SET body = b.body, source = NULL
FROM (SELECT unnest(@ids::bigint[]) AS id, unnest(@bodies::text[]) AS body) b
WHERE ev.id = b.id;
