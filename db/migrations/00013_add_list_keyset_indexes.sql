-- +goose Up
-- Keyset pages of tasks ordered by due date compare (due date, id) rows. Tasks without a
-- due date come last in both directions, so each direction sorts on the due date with
-- NULL replaced by the end it goes to; one index per direction makes every page, however
-- deep, an index range scan.
CREATE INDEX tasks_due_at_last_idx ON tasks ((coalesce(due_at, 'infinity'::timestamptz)), id);
CREATE INDEX tasks_due_at_desc_last_idx ON tasks ((coalesce(due_at, '-infinity'::timestamptz)), id);
-- The user list's q filter (a substring of the name or the email) without a full scan.
CREATE INDEX users_name_trgm_idx ON users USING gin (name gin_trgm_ops);
CREATE INDEX users_email_trgm_idx ON users USING gin (email gin_trgm_ops);

-- +goose Down
DROP INDEX users_email_trgm_idx;
DROP INDEX users_name_trgm_idx;
DROP INDEX tasks_due_at_desc_last_idx;
DROP INDEX tasks_due_at_last_idx;
