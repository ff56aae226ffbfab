-- +goose Up
-- Run event streams end when what they were authorized by goes away: their run is
-- deleted (also through its agent's deletion), or their user is deleted, deactivated or
-- loses the administrator role. Each such change notifies agent_run_streams, at commit,
-- with "run:<id>" or "user:<id>", so every server instance ends its streams at once
-- without polling.
-- +goose StatementBegin
CREATE FUNCTION agent_run_streams_revoke() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'agent_runs' THEN
        PERFORM pg_notify('agent_run_streams', 'run:' || OLD.id);
    ELSE
        PERFORM pg_notify('agent_run_streams', 'user:' || OLD.id);
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER agent_runs_streams_revoke AFTER DELETE ON agent_runs
    FOR EACH ROW EXECUTE FUNCTION agent_run_streams_revoke();

CREATE TRIGGER users_streams_revoke_on_delete AFTER DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION agent_run_streams_revoke();

CREATE TRIGGER users_streams_revoke_on_update AFTER UPDATE OF is_active, is_admin ON users
    FOR EACH ROW
    WHEN ((OLD.is_active AND NOT NEW.is_active) OR (OLD.is_admin AND NOT NEW.is_admin))
    EXECUTE FUNCTION agent_run_streams_revoke();

-- +goose Down
DROP TRIGGER users_streams_revoke_on_update ON users;
DROP TRIGGER users_streams_revoke_on_delete ON users;
DROP TRIGGER agent_runs_streams_revoke ON agent_runs;
DROP FUNCTION agent_run_streams_revoke();
