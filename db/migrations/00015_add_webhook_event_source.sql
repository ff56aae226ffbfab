-- +goose Up
-- Events recorded by the change's own statement: the row as stored (source), the body
-- left empty until the dispatcher renders it, in the transaction that fans it out.
ALTER TABLE webhook_events ADD COLUMN source jsonb;

-- +goose Down
ALTER TABLE webhook_events DROP COLUMN source;
