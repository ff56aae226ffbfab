-- +goose Up
-- The audit log: one row per change made through the API or by an agent's tool, written
-- in the change's own transaction. Actor and resource ids carry no foreign keys: an
-- event outlives the user, key, run or resource it names.
CREATE TABLE audit_events (
    id                 bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at        timestamptz NOT NULL DEFAULT now(),
    actor_type         text        NOT NULL CHECK (actor_type IN ('user', 'api_key', 'agent_run', 'system')),
    actor_user_id      bigint,
    actor_api_key_id   bigint,
    actor_agent_run_id bigint,
    action             text        NOT NULL,
    resource_type      text        NOT NULL,
    resource_id        bigint,
    request_id         text,
    ip                 text,
    changes            jsonb
);

-- Newest first is id descending (the cursor); each filter has its own index ending in id.
CREATE INDEX audit_events_actor_user_id_idx ON audit_events (actor_user_id, id);
CREATE INDEX audit_events_action_idx ON audit_events (action, id);
CREATE INDEX audit_events_resource_idx ON audit_events (resource_type, resource_id, id);
CREATE INDEX audit_events_occurred_at_idx ON audit_events (occurred_at);

-- Append-only in the database itself: UPDATE and DELETE are refused, except DELETE by the
-- retention job, which sets audit.retention = 'on' for its own transaction (SET LOCAL).
-- +goose StatementBegin
CREATE FUNCTION audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('audit.retention', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
-- +goose StatementEnd

CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();

CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- +goose Down
DROP TABLE audit_events;
DROP FUNCTION audit_events_append_only();
