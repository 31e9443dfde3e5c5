-- Users, sessions and refresh tokens. Ids are UUIDv7 made by the server (time-ordered,
-- PostgreSQL 15 has no uuidv7()).
CREATE TABLE users (
    id            uuid PRIMARY KEY,
    username      text NOT NULL UNIQUE,
    email         text NOT NULL UNIQUE,          -- stored lower-cased
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sessions (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_info text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);
CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_revoked_idx ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

-- Only hashes of refresh tokens are kept. A token that was rotated away keeps its row
-- (used_at set) so that presenting it again is recognised as reuse.
CREATE TABLE refresh_tokens (
    token_hash bytea PRIMARY KEY,
    session_id uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    used_at    timestamptz
);
CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);

-- last_seq is the per-room counter; a writer reserves a range with one UPDATE per batch.
CREATE TABLE rooms (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    description text,
    created_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    last_seq    bigint NOT NULL DEFAULT 0
);
CREATE INDEX rooms_created_idx ON rooms (created_at DESC, id DESC);

CREATE TABLE room_members (
    room_id   uuid NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    joined_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX room_members_user_idx ON room_members (user_id);

-- No foreign keys here on purpose: the writer has already checked room and membership
-- under the room's row lock, and per-row FK triggers would halve bulk insert speed.
-- username is copied in (it never changes) so history needs no join.
CREATE TABLE messages (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    room_id       uuid NOT NULL,
    seq           bigint NOT NULL,
    user_id       uuid NOT NULL,
    username      text NOT NULL,
    content       text NOT NULL,
    client_msg_id text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT messages_room_seq UNIQUE (room_id, seq)
);
-- A retried send with the same client_msg_id stores nothing new.
CREATE UNIQUE INDEX messages_client_msg_idx ON messages (room_id, user_id, client_msg_id)
    WHERE client_msg_id IS NOT NULL;

-- Nodes heartbeat here; rows of a node that stopped are removed by the others.
CREATE TABLE nodes (
    node_id      text PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);

-- One row per (node, room, user) with at least one joined socket on that node.
CREATE TABLE presence (
    node_id   text NOT NULL,
    room_id   uuid NOT NULL,
    user_id   uuid NOT NULL,
    username  text NOT NULL,
    sockets   integer NOT NULL DEFAULT 1,
    last_seen timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (node_id, room_id, user_id)
);
CREATE INDEX presence_room_idx ON presence (room_id, user_id);
