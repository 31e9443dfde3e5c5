-- Push to members who are offline (Web Push, and `notification.offline` webhooks).
--
-- A user's Web Push subscriptions (RFC 8030): where its push service takes messages for
-- one browser, with the keys the payload is encrypted for (RFC 8291).
CREATE TABLE push_subscriptions (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    endpoint   text NOT NULL,
    p256dh     bytea NOT NULL,
    auth       bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, endpoint)
);

-- How far the notifier has looked at each room's stream (one node at a time follows
-- every room, as the webhook dispatcher does). Rooms that exist now start at their end:
-- nothing already sent is notified.
CREATE TABLE push_cursors (
    room_id uuid PRIMARY KEY REFERENCES rooms (id) ON DELETE CASCADE,
    seq     bigint NOT NULL
);
INSERT INTO push_cursors (room_id, seq) SELECT id, last_seq FROM rooms;

-- What waits to be pushed, one row per (user, room): the messages seen since the last
-- push, sent together once `due_at` is reached (grace after the first, and at most one
-- push per window).
CREATE TABLE push_pending (
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    room_id     uuid NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    message_ids bigint[] NOT NULL,
    seqs        bigint[] NOT NULL,
    preview     text NOT NULL,
    due_at      timestamptz NOT NULL,
    PRIMARY KEY (user_id, room_id)
);
CREATE INDEX push_pending_due_idx ON push_pending (due_at);

-- When each (user, room) was last pushed: the start of its coalescing window.
CREATE TABLE push_sent (
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    room_id uuid NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    sent_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, room_id)
);
