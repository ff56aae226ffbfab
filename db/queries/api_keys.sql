-- name: APIKeyCreate :one
-- APIKeyCreate stores a new API key (its hash, never the key).
INSERT INTO api_keys (user_id, name, prefix, key_hash, scopes, expires_at)
VALUES (@user_id, @name, @prefix, @key_hash, @scopes, sqlc.narg('expires_at'))
RETURNING *;

-- name: APIKeyGetByID :one
-- APIKeyGetByID returns one API key (the loader of the key record cache).
SELECT * FROM api_keys WHERE id = @id;

-- name: APIKeyIDByHash :one
-- APIKeyIDByHash finds the id of the key with a given hash (authenticating a request).
SELECT id FROM api_keys WHERE key_hash = @key_hash;

-- name: APIKeyList :many
-- APIKeyList returns a page of API keys, newest first, optionally of one user.
SELECT * FROM api_keys
WHERE (sqlc.narg('user_id')::bigint IS NULL OR user_id = sqlc.narg('user_id'))
ORDER BY id DESC
LIMIT @max_rows OFFSET @skip_rows;

-- name: APIKeyCount :one
-- APIKeyCount counts the API keys APIKeyList pages through.
SELECT count(*) FROM api_keys
WHERE (sqlc.narg('user_id')::bigint IS NULL OR user_id = sqlc.narg('user_id'));

-- name: APIKeyRevoke :one
-- APIKeyRevoke revokes a key (keeping the first revocation time) and returns it.
UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = @id
RETURNING *;

-- name: APIKeyTouch :exec
-- APIKeyTouch records a key's use, at most once a minute.
UPDATE api_keys SET last_used_at = now()
WHERE id = @id AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute');
