-- Webhooks: events out to the operator's endpoints, at least once, in seq order per
-- room and endpoint. A room's stream already is the outbox of its events: a dispatcher
-- follows it from a cursor per (endpoint, room), so the send path writes nothing more.
-- Events that are not stream entries (users; room creation, deletion and member
-- changes that are not entries) are written to webhook_outbox in the transaction that
-- makes them, one row per endpoint that subscribes, and only when one does.

-- The endpoints of the configuration (name = its `name`, else its URL), kept by the
-- nodes at start-up: the outbox is written for the endpoints listed here.
CREATE TABLE webhook_endpoints (
    name       text PRIMARY KEY,
    url        text NOT NULL,
    events     text[] NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- How far an endpoint has taken a room's stream: every entry up to delivered_seq was
-- delivered, was dead, or is of a type the endpoint does not take. The entry after it
-- has failed `attempts` times (the first at first_failed_at) and is tried again at
-- next_at. A room with no row starts at its first entry (rooms that existed when the
-- endpoint was added get a row at their last seq then).
CREATE TABLE webhook_cursors (
    endpoint        text NOT NULL,
    room_id         uuid NOT NULL,
    delivered_seq   bigint NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    first_failed_at timestamptz,
    next_at         timestamptz,
    PRIMARY KEY (endpoint, room_id)
);

-- Events that are not stream entries, per endpoint, until delivered or dead. `body` is
-- the exact JSON sent; event_id its `id` (the same for every endpoint and attempt).
CREATE TABLE webhook_outbox (
    id              bigserial PRIMARY KEY,
    endpoint        text NOT NULL,
    event_id        text NOT NULL,
    type            text NOT NULL,
    body            text NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    first_failed_at timestamptz,
    next_at         timestamptz
);
CREATE INDEX webhook_outbox_endpoint_idx ON webhook_outbox (endpoint, id);

-- Events given up on (too many attempts, or too old): listed and retried by an
-- operator (`GET /admin/webhooks/dead`, `POST /admin/webhooks/dead/:id/retry`, which
-- moves the row back to the outbox with the same body and id).
CREATE TABLE webhook_dead (
    id              bigserial PRIMARY KEY,
    endpoint        text NOT NULL,
    event_id        text NOT NULL,
    type            text NOT NULL,
    room_id         uuid,
    seq             bigint,
    body            text NOT NULL,
    attempts        integer NOT NULL,
    last_error      text NOT NULL,
    first_failed_at timestamptz,
    died_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_dead_endpoint_idx ON webhook_dead (endpoint, id);
