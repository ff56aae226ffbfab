-- name: UserCreate :one
-- UserCreate inserts a user and returns it.
INSERT INTO users (name, email, password_hash, is_admin)
VALUES (@name, @email, @password_hash, @is_admin)
RETURNING *;

-- name: UserGetByID :one
-- UserGetByID returns one user.
SELECT * FROM users WHERE id = @id;

-- name: UserGetByEmail :one
-- UserGetByEmail finds a user by email, ignoring case.
SELECT * FROM users WHERE lower(email) = lower(@email);

-- name: UserList :many
-- UserList returns a page of users matching the optional filters, ordered by id.
-- q must already be escaped for LIKE.
SELECT * FROM users
WHERE (sqlc.narg(q)::text IS NULL OR name ILIKE '%' || sqlc.narg(q) || '%' OR email ILIKE '%' || sqlc.narg(q) || '%')
  AND (sqlc.narg(is_active)::boolean IS NULL OR is_active = sqlc.narg(is_active))
  AND (sqlc.narg(is_admin)::boolean IS NULL OR is_admin = sqlc.narg(is_admin))
ORDER BY id
LIMIT @max_rows OFFSET @skip_rows;

-- name: UserCount :one
-- UserCount counts the users matching the same filters as UserList.
SELECT count(*) FROM users
WHERE (sqlc.narg(q)::text IS NULL OR name ILIKE '%' || sqlc.narg(q) || '%' OR email ILIKE '%' || sqlc.narg(q) || '%')
  AND (sqlc.narg(is_active)::boolean IS NULL OR is_active = sqlc.narg(is_active))
  AND (sqlc.narg(is_admin)::boolean IS NULL OR is_admin = sqlc.narg(is_admin));

-- name: UserUpdate :one
-- UserUpdate changes the given fields of a user whose version still matches (end_sessions
-- bumps its token generation); no row means the user is gone or changed meanwhile.
UPDATE users SET
    name          = coalesce(sqlc.narg(name), name),
    email         = coalesce(sqlc.narg(email), email),
    password_hash = coalesce(sqlc.narg(password_hash), password_hash),
    is_admin      = coalesce(sqlc.narg(is_admin), is_admin),
    is_active     = coalesce(sqlc.narg(is_active), is_active),
    token_generation = token_generation + CASE WHEN @end_sessions::boolean THEN 1 ELSE 0 END,
    version       = version + 1,
    updated_at    = now()
WHERE id = @id AND version = @version
RETURNING *;

-- name: UserDelete :execrows
-- UserDelete removes a user whose version matches (any version when version is null).
DELETE FROM users WHERE id = @id AND (sqlc.narg(version)::bigint IS NULL OR version = sqlc.narg(version));

-- name: UserExistsAdmin :one
-- UserExistsAdmin tells whether any administrator account exists.
SELECT EXISTS (SELECT 1 FROM users WHERE is_admin);

-- name: UserGetByIDForUpdate :one
-- UserGetByIDForUpdate returns one user and locks it until the transaction ends.
SELECT * FROM users WHERE id = @id FOR UPDATE;

-- name: UserPage :many
-- UserPage returns a page of all users ordered by id, after @after_id (0: from the first),
-- each row with the count of all users: count and page in one prepared statement. The
-- skipped users are read from the primary key alone (an index-only scan), and only the
-- page's rows from the table.
SELECT sqlc.embed(users), (SELECT count(*) FROM users)::bigint AS total
FROM users
WHERE users.id IN (
    SELECT p.id FROM users AS p WHERE p.id > @after_id ORDER BY p.id LIMIT @max_rows OFFSET @skip_rows
)
ORDER BY users.id;

-- name: UserPageFiltered :many
-- UserPageFiltered is UserPage for the users matching UserList's optional filters (run with
-- a custom plan); q must already be escaped for LIKE.
SELECT sqlc.embed(users),
    (SELECT count(*) FROM users
     WHERE (sqlc.narg(q)::text IS NULL OR name ILIKE '%' || sqlc.narg(q) || '%' OR email ILIKE '%' || sqlc.narg(q) || '%')
       AND (sqlc.narg(is_active)::boolean IS NULL OR is_active = sqlc.narg(is_active))
       AND (sqlc.narg(is_admin)::boolean IS NULL OR is_admin = sqlc.narg(is_admin)))::bigint AS total
FROM users
WHERE (sqlc.narg(q)::text IS NULL OR name ILIKE '%' || sqlc.narg(q) || '%' OR email ILIKE '%' || sqlc.narg(q) || '%')
  AND (sqlc.narg(is_active)::boolean IS NULL OR is_active = sqlc.narg(is_active))
  AND (sqlc.narg(is_admin)::boolean IS NULL OR is_admin = sqlc.narg(is_admin))
  AND users.id > @after_id
ORDER BY users.id
LIMIT @max_rows OFFSET @skip_rows;
