-- name: IdempotencyKeyAcquire :one
-- IdempotencyKeyAcquire claims a key for a new request: it inserts the key, or takes over
-- one that expired or whose first request was abandoned before stale_before. No row
-- means someone else holds the key.
INSERT INTO idempotency_keys (user_id, key, request_hash, expires_at)
VALUES (@user_id, @key, @request_hash, @expires_at)
ON CONFLICT (user_id, key) DO UPDATE SET
    request_hash     = excluded.request_hash,
    status_code      = NULL,
    response_headers = NULL,
    response_body    = NULL,
    locked_at        = now(),
    created_at       = now(),
    expires_at       = excluded.expires_at
WHERE idempotency_keys.expires_at < now()
   OR (idempotency_keys.status_code IS NULL AND idempotency_keys.locked_at < @stale_before)
RETURNING user_id;

-- name: IdempotencyKeyGet :one
-- IdempotencyKeyGet returns a stored key with its response, if any.
SELECT * FROM idempotency_keys WHERE user_id = @user_id AND key = @key;

-- name: IdempotencyKeyComplete :exec
-- IdempotencyKeyComplete stores the first response for replays.
UPDATE idempotency_keys
SET status_code = @status_code, response_headers = @response_headers, response_body = @response_body
WHERE user_id = @user_id AND key = @key;

-- name: IdempotencyKeyRelease :exec
-- IdempotencyKeyRelease forgets a key whose request failed without a storable response,
-- so that the client can retry it.
DELETE FROM idempotency_keys WHERE user_id = @user_id AND key = @key AND status_code IS NULL;

-- name: IdempotencyKeyDeleteExpired :execrows
-- IdempotencyKeyDeleteExpired purges keys past their expiry.
DELETE FROM idempotency_keys WHERE expires_at < now();
