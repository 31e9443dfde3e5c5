-- Pinned messages: at most `messages.max_pins` per room (the server counts them with
-- the room row locked), listed newest first. Keyed by the room first, like every
-- room-scoped table (docs/SCALING.md); a deletion, retention and the room's deletion
-- remove a message's pin with the message.
CREATE TABLE message_pins (
    room_id    uuid NOT NULL,
    message_id bigint NOT NULL,
    pinned_by  uuid NOT NULL,
    pinned_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (room_id, message_id)
);
CREATE INDEX message_pins_newest_idx ON message_pins (room_id, pinned_at DESC, message_id DESC);

-- Whether any member (not only the owner and admins) may pin and unpin.
ALTER TABLE rooms ADD COLUMN members_can_pin boolean NOT NULL DEFAULT false;
