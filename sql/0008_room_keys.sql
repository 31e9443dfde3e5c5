-- Keys that lead with the room, like rooms, room_members, room_bans, room_invites,
-- message_search and the (room_id, seq) key of messages: a distributed PostgreSQL can
-- then shard every room-scoped table by room_id (docs/SCALING.md), and a room's rows
-- are found by key (a deleted room's edits and reactions were left behind before).
DELETE FROM message_edits e WHERE NOT EXISTS (SELECT 1 FROM rooms r WHERE r.id = e.room_id);
DELETE FROM message_reactions x WHERE NOT EXISTS (SELECT 1 FROM rooms r WHERE r.id = x.room_id);
ALTER TABLE message_edits DROP CONSTRAINT message_edits_pkey,
    ADD PRIMARY KEY (room_id, message_id, version);
ALTER TABLE message_reactions DROP CONSTRAINT message_reactions_pkey,
    ADD PRIMARY KEY (room_id, message_id, user_id, emoji);
