-- A quiet room's message (alone in its writer's batch, with no reply, attachment or
-- mention) stored in one round trip: the writer calls this function outside any
-- explicit transaction, so the call is its own transaction and commits when it returns.
--
-- It locks the room row, reads the sender's standing as the batched writer's lock
-- statement does (role, mute, a block in a direct room, visibility, slow mode), and
-- stores the message only when that standing is one of `p_allowed` (or `p_unslowed`
-- in a room with slow mode on, unless the server API posts it): the caller computes
-- both lists from the access rule (src/base/access.rs), so the decision stays there.
-- Anything else stores nothing and returns the standing: the caller answers a refusal
-- at once, and sends anything it allows (a client_msg_id already stored, a slowed
-- member in slow mode) through the batched path, which knows those cases.
--
-- Each statement of a VOLATILE PL/pgSQL function takes a fresh snapshot under READ
-- COMMITTED: the client_msg_id look-up runs after the lock is granted, so it sees the
-- row of a concurrent writer (of any node) that held the lock before; one statement
-- would look with the snapshot taken before its lock wait, and miss it.
--
-- The notification is the batch payload the caller rendered (src/pg/notify.rs) cut at
-- the values only the insert knows: p_parts[1] seq p_parts[2] seq p_parts[3] micros
-- p_parts[4] id p_parts[5] seq p_parts[6] created_at p_parts[7].
CREATE FUNCTION chat_send_one(
    p_room uuid, p_user uuid, p_username text, p_content text, p_cmid text,
    p_by_key boolean, p_allowed text[], p_unslowed text[], p_channel text, p_parts text[])
RETURNS TABLE (o_visibility text, o_role text, o_muted boolean, o_blocked boolean,
               o_seq bigint, o_id bigint, o_created_at text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_slow integer;
    v_key text;
    v_at timestamptz;
BEGIN
    SELECT r.visibility, m.role, x.muted,
           CASE WHEN r.visibility = 'direct' AND m.user_id IS NOT NULL THEN EXISTS (
             SELECT 1 FROM (SELECT replace(replace(r.direct_key, m.user_id::text, ''), ':', '')::uuid
                            AS peer) p
             JOIN user_blocks b ON (b.user_id = m.user_id AND b.blocked_id = p.peer)
                                OR (b.user_id = p.peer AND b.blocked_id = m.user_id))
           ELSE false END,
           r.slow_mode_secs
      INTO o_visibility, o_role, o_muted, o_blocked, v_slow
      FROM rooms r
      LEFT JOIN room_members m ON m.room_id = r.id AND m.user_id = p_user
      LEFT JOIN room_restrictions x ON x.room_id = r.id AND x.user_id = m.user_id
     WHERE r.id = p_room
       FOR UPDATE OF r;
    IF NOT FOUND THEN
        RETURN NEXT;
        RETURN;
    END IF;
    v_key := coalesce(o_role, '') || '/' || coalesce(o_muted, false)::text || '/'
             || o_blocked::text || '/' || o_visibility;
    IF NOT v_key = ANY (CASE WHEN v_slow = 0 OR p_by_key THEN p_allowed ELSE p_unslowed END)
       OR (p_cmid IS NOT NULL AND EXISTS (
             SELECT 1 FROM messages m
              WHERE m.room_id = p_room AND m.user_id = p_user AND m.client_msg_id = p_cmid))
    THEN
        RETURN NEXT;
        RETURN;
    END IF;
    UPDATE rooms SET last_seq = last_seq + 1, last_activity_at = now()
     WHERE id = p_room
    RETURNING last_seq INTO o_seq;
    INSERT INTO messages (room_id, seq, user_id, username, content, client_msg_id)
    VALUES (p_room, o_seq, p_user, p_username, p_content, p_cmid)
    RETURNING id, created_at INTO o_id, v_at;
    o_created_at := to_char(v_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
    PERFORM pg_notify(p_channel, p_parts[1] || o_seq || p_parts[2] || o_seq || p_parts[3]
        || (extract(epoch FROM clock_timestamp()) * 1000000)::int8 || p_parts[4] || o_id
        || p_parts[5] || o_seq || p_parts[6] || o_created_at || p_parts[7]);
    RETURN NEXT;
END
$$;
