-- Mentions and notification levels.
--
-- A message keeps whom it mentions by name (`mentions`, members of the room named
-- `@username`, never the sender) and whether it mentions the whole room (`@room`), so
-- that history shows what the live event showed. Both are null/false for most messages
-- and are set by a statement of their own only in batches that have `@` candidates.
ALTER TABLE messages ADD COLUMN mentions uuid[];
ALTER TABLE messages ADD COLUMN mentions_room boolean NOT NULL DEFAULT false;

-- Who was notified of which message: one row per (mentioned user, message), at the seq
-- where the mention happened (the message's, or the edit's that added it). Nobody who
-- blocked the sender has a row. Unread mentions (GET /me/rooms) are counted from
-- `mentions_unread_idx` alone (the user's rows of a room after its read mark); the
-- newest-first list (GET /me/mentions) walks the primary key backwards.
CREATE TABLE mentions (
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    message_id bigint NOT NULL,
    room_id    uuid NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq        bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, message_id)
);
CREATE INDEX mentions_unread_idx ON mentions (user_id, room_id, seq);
-- A deleted message takes its mentions with it.
CREATE INDEX mentions_message_idx ON mentions (message_id);

-- What a member chose to be notified of in a room: all messages, mentions only, or
-- nothing. Null: the server's default (direct rooms and small rooms "all", rooms above
-- a configured size "mentions"). `notifications_muted` stays the same fact as "none"
-- (it is set together with the level) for clients that know only it.
ALTER TABLE room_members ADD COLUMN notification_level text
    CHECK (notification_level IN ('all', 'mentions', 'none'));
ALTER TABLE room_departures ADD COLUMN notification_level text;
