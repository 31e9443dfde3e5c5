-- Slow mode: a member (not the owner or an admin) waits `slow_mode_secs` between two
-- messages in the room (0: off). The writer reads the sender's `last_sent_at` in the
-- statement that locks the room and sets it in the statement that stores the batch,
-- only in rooms with slow mode on (other rooms write nothing more per message).
ALTER TABLE rooms ADD COLUMN slow_mode_secs integer NOT NULL DEFAULT 0
    CHECK (slow_mode_secs BETWEEN 0 AND 3600);
ALTER TABLE room_members ADD COLUMN last_sent_at timestamptz;
