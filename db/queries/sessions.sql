-- name: SessionCreate :one
-- SessionCreate starts a login session for a new refresh-token family.
INSERT INTO sessions (family_id, user_id)
VALUES (@family_id, @user_id)
RETURNING *;

-- name: SessionGetByID :one
-- SessionGetByID returns one session (checked on every request made with its access tokens).
SELECT * FROM sessions WHERE id = @id;

-- name: SessionGetByFamilyForUpdate :one
-- SessionGetByFamilyForUpdate returns the session of a refresh-token family and locks it for a refresh.
SELECT * FROM sessions WHERE family_id = @family_id FOR UPDATE;

-- name: SessionRevoke :many
-- SessionRevoke ends the session of a refresh-token family and returns its id (none when it had ended).
UPDATE sessions SET revoked_at = now() WHERE family_id = @family_id AND revoked_at IS NULL
RETURNING id;

-- name: SessionRevokeUser :many
-- SessionRevokeUser ends every session of a user (password change, deactivation) and returns their ids.
UPDATE sessions SET revoked_at = now() WHERE user_id = @user_id AND revoked_at IS NULL
RETURNING id;

-- name: SessionDeleteStartedBefore :execrows
-- SessionDeleteStartedBefore purges sessions that began before the given time (with their refresh tokens).
DELETE FROM sessions WHERE created_at < @before;
