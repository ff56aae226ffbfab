-- name: RefreshTokenCreate :exec
-- RefreshTokenCreate stores the hash of a new refresh token.
INSERT INTO refresh_tokens (user_id, family_id, token_hash, expires_at)
VALUES (@user_id, @family_id, @token_hash, @expires_at);

-- name: RefreshTokenGetByHashForUpdate :one
-- RefreshTokenGetByHashForUpdate loads a token by its hash and locks it for rotation.
SELECT * FROM refresh_tokens WHERE token_hash = @token_hash FOR UPDATE;

-- name: RefreshTokenMarkUsed :exec
-- RefreshTokenMarkUsed records that a token was rotated.
UPDATE refresh_tokens SET used_at = now() WHERE id = @id;

-- name: RefreshTokenRevokeFamily :exec
-- RefreshTokenRevokeFamily revokes every token of a login family.
UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = @family_id AND revoked_at IS NULL;

-- name: RefreshTokenRevokeUser :exec
-- RefreshTokenRevokeUser revokes every token of a user (password change, deactivation).
UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = @user_id AND revoked_at IS NULL;

-- name: RefreshTokenDeleteExpired :execrows
-- RefreshTokenDeleteExpired purges tokens that expired before the given time.
DELETE FROM refresh_tokens WHERE expires_at < @before;
