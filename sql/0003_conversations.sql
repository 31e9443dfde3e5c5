-- Conversations: room visibility, roles, mutes, bans, invitations, direct rooms and
-- read state.

-- public: listed and joinable by anyone; private: listed and readable by members only,
-- joined by invitation; direct: exactly two members, found by the pair.
ALTER TABLE rooms ADD COLUMN visibility text NOT NULL DEFAULT 'public'
    CHECK (visibility IN ('public', 'private', 'direct'));
-- The pair of a direct room ("<smaller uuid>:<larger uuid>"): one room per pair.
ALTER TABLE rooms ADD COLUMN direct_key text UNIQUE;
-- When the room last got a stream entry (moved by the writer's seq reservation).
ALTER TABLE rooms ADD COLUMN last_activity_at timestamptz NOT NULL DEFAULT now();
-- Read receipts for this room (members see how far others read).
ALTER TABLE rooms ADD COLUMN receipts boolean NOT NULL DEFAULT true;
-- Kept by a trigger: receipts are never sent in rooms above a configured size.
ALTER TABLE rooms ADD COLUMN member_count integer NOT NULL DEFAULT 0;
UPDATE rooms r SET member_count = (SELECT count(*) FROM room_members m WHERE m.room_id = r.id),
                   last_activity_at = created_at;
-- Names are unique among public rooms only: a private room's name reveals nothing.
ALTER TABLE rooms DROP CONSTRAINT rooms_name_key;
CREATE UNIQUE INDEX rooms_public_name_key ON rooms (name) WHERE visibility = 'public';
CREATE INDEX rooms_public_created_idx ON rooms (created_at DESC, id DESC) WHERE visibility = 'public';

ALTER TABLE room_members ADD COLUMN role text NOT NULL DEFAULT 'member'
    CHECK (role IN ('owner', 'admin', 'member'));
-- A muted member reads but cannot send.
ALTER TABLE room_members ADD COLUMN muted boolean NOT NULL DEFAULT false;
-- The member silenced the room's notifications for themselves (direct rooms too).
ALTER TABLE room_members ADD COLUMN notifications_muted boolean NOT NULL DEFAULT false;
-- The highest seq the member has read; only moves forward.
ALTER TABLE room_members ADD COLUMN last_read_seq bigint NOT NULL DEFAULT 0;
UPDATE room_members m SET role = 'owner' FROM rooms r
    WHERE r.id = m.room_id AND r.created_by = m.user_id;

CREATE FUNCTION room_member_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE rooms SET member_count = member_count + 1 WHERE id = NEW.room_id;
    ELSE
        UPDATE rooms SET member_count = member_count - 1 WHERE id = OLD.room_id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER room_members_count AFTER INSERT OR DELETE ON room_members
    FOR EACH ROW EXECUTE FUNCTION room_member_count();

CREATE TABLE room_bans (
    room_id    uuid NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    banned_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    banned_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (room_id, user_id)
);

CREATE TABLE room_invites (
    room_id    uuid NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    invited_by uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX room_invites_user_idx ON room_invites (user_id, created_at DESC);

-- Stream entries that are not chat messages: membership changes and room settings
-- ("system"), with a structured payload. Ordinary messages have kind 'message'.
ALTER TABLE messages ADD COLUMN kind text NOT NULL DEFAULT 'message';
ALTER TABLE messages ADD COLUMN data jsonb;
