-- Mutes and bans belong to the (room, user) pair, not to a membership: leaving and
-- joining again must not lift a mute, and a ban keeps a non-member out. One row per
-- restricted pair; a row with neither flag is deleted, never kept.
CREATE TABLE room_restrictions (
    room_id   uuid NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    muted     boolean NOT NULL DEFAULT false,
    banned    boolean NOT NULL DEFAULT false,
    -- Who set each: an admin lifts no restriction the owner set.
    muted_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    banned_by uuid REFERENCES users (id) ON DELETE SET NULL,
    set_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (room_id, user_id),
    CHECK (muted OR banned)
);

INSERT INTO room_restrictions (room_id, user_id, muted)
    SELECT room_id, user_id, true FROM room_members WHERE muted;
INSERT INTO room_restrictions (room_id, user_id, banned, banned_by, set_at)
    SELECT room_id, user_id, true, banned_by, banned_at FROM room_bans
    ON CONFLICT (room_id, user_id) DO UPDATE SET banned = true, banned_by = EXCLUDED.banned_by;

-- The old homes of the same facts: one place only from here on.
ALTER TABLE room_members DROP COLUMN muted;
DROP TABLE room_bans;

-- What a member who left had set for itself (notification mute, read position): a member
-- who comes back, or is put back into a direct room by the other side, finds it as left.
CREATE TABLE room_departures (
    room_id             uuid NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id             uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    notifications_muted boolean NOT NULL,
    last_read_seq       bigint NOT NULL,
    left_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (room_id, user_id)
);

-- Per-user hourly limits on room creation and invitations count these.
CREATE INDEX rooms_created_by_idx ON rooms (created_by, created_at);
CREATE INDEX room_invites_by_idx ON room_invites (invited_by, created_at);

-- Unread counts (GET /me/rooms): others' messages after a read mark, read from the index
-- alone. Only `kind`, which never changes, is in the predicate, so edits and deletions
-- stay HOT updates.
CREATE INDEX messages_unread_idx ON messages (room_id, seq) INCLUDE (user_id)
    WHERE kind = 'message';
