-- +goose Up
-- A login session: every refresh token rotated from one login shares it (its family).
-- Access tokens name their session (the sid claim), so ending the session ends them.
CREATE TABLE sessions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    family_id   uuid        NOT NULL UNIQUE,
    user_id     bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The login; the session's absolute lifetime (SESSION_MAX_DAYS) counts from it.
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_created_idx ON sessions (created_at);

-- Families from before sessions existed become sessions that began with their oldest
-- token; a family is revoked when all its tokens are.
INSERT INTO sessions (family_id, user_id, created_at, revoked_at)
SELECT family_id, min(user_id), min(created_at),
       CASE WHEN bool_and(revoked_at IS NOT NULL) THEN max(revoked_at) END
FROM refresh_tokens
GROUP BY family_id;

ALTER TABLE refresh_tokens
    ADD CONSTRAINT refresh_tokens_family_fkey FOREIGN KEY (family_id) REFERENCES sessions (family_id) ON DELETE CASCADE;

-- Bumped on every password change and deactivation: access tokens carry the generation
-- they were issued under and stop working when it moves on.
ALTER TABLE users ADD COLUMN token_generation bigint NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE users DROP COLUMN token_generation;
ALTER TABLE refresh_tokens DROP CONSTRAINT refresh_tokens_family_fkey;
DROP TABLE sessions;
