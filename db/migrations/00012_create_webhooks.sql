-- +goose Up
-- Outbound webhooks: endpoints subscribed by administrators, the events recorded in the
-- transaction of the change they describe (the outbox), and one delivery per event and
-- subscribed endpoint, carried out by River jobs.
CREATE TABLE webhook_endpoints (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    url                  text        NOT NULL CHECK (char_length(url) BETWEEN 1 AND 2000),
    description          text        NOT NULL DEFAULT '' CHECK (char_length(description) <= 500),
    events               text[]      NOT NULL CHECK (cardinality(events) > 0),
    is_active            boolean     NOT NULL DEFAULT true,
    -- The signing secret ("whsec_" + base64); after a rotation the previous one keeps
    -- signing until previous_secret_expires_at.
    secret               text        NOT NULL,
    previous_secret      text,
    previous_secret_expires_at timestamptz,
    -- Why the endpoint was deactivated by the system (410 Gone), when it was.
    disabled_reason      text,
    version              bigint      NOT NULL DEFAULT 1,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- Fan-out reads the active endpoints on every emitted event.
CREATE INDEX webhook_endpoints_active_idx ON webhook_endpoints USING gin (events) WHERE is_active;

-- One event: its message id (webhook-id, the same on every attempt) and the exact body
-- that is signed and sent.
CREATE TABLE webhook_events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    msg_id     text        NOT NULL UNIQUE,
    type       text        NOT NULL,
    body       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_deliveries (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id        bigint      NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id           bigint      NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    status             text        NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'succeeded', 'retrying', 'failed')),
    attempts           integer     NOT NULL DEFAULT 0,
    last_status_code   integer,
    last_error         text,
    -- The start of the last answer's body (at most 4 KiB).
    last_response_body text,
    next_attempt_at    timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    delivered_at       timestamptz
);

CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, id);
CREATE INDEX webhook_deliveries_event_idx ON webhook_deliveries (event_id);
-- The queue depth per endpoint (metrics) counts the unfinished deliveries.
CREATE INDEX webhook_deliveries_unfinished_idx ON webhook_deliveries (endpoint_id)
    WHERE status IN ('pending', 'retrying');

-- +goose Down
DROP TABLE webhook_deliveries;
DROP TABLE webhook_events;
DROP TABLE webhook_endpoints;
