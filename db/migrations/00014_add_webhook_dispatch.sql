-- +goose Up
-- The outbox and its dispatcher: a change's transaction records only its event
-- (dispatched_at NULL); a dispatcher claims undispatched events in batches and, in one
-- transaction, writes their deliveries and delivery jobs and marks them dispatched.
ALTER TABLE webhook_events ADD COLUMN dispatched_at timestamptz;
-- Events recorded before the dispatcher existed got their deliveries when recorded.
UPDATE webhook_events SET dispatched_at = created_at;
CREATE INDEX webhook_events_undispatched_idx ON webhook_events (id) WHERE dispatched_at IS NULL;
-- One delivery per event and endpoint: a second fan-out of an event fails rather than
-- sending it twice.
CREATE UNIQUE INDEX webhook_deliveries_event_endpoint_key ON webhook_deliveries (event_id, endpoint_id);
DROP INDEX webhook_deliveries_event_idx;

-- +goose Down
CREATE INDEX webhook_deliveries_event_idx ON webhook_deliveries (event_id);
DROP INDEX webhook_deliveries_event_endpoint_key;
DROP INDEX webhook_events_undispatched_idx;
ALTER TABLE webhook_events DROP COLUMN dispatched_at;
