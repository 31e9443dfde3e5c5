-- Room names follow the rules of every name (docs/PROTOCOL.md, "Names"): public rooms
-- are unique by `name_key`, the server's case-folded confusable skeleton of the name
-- (Unicode TS #39: `LOBBY`, `l0bby` and a Cyrillic look-alike of `lobby` are one
-- name). The skeleton is computed by the server, not in SQL, so this migration only adds
-- the column and moves the unique index onto it; the server then fills the key of every
-- room that has none, before it serves (`chatd migrate` does it too), oldest room first:
--   - a stored name is first cleaned of what the rules refuse (control, invisible,
--     formatting and direction-changing characters, repeated spaces); a name left with
--     nothing visible becomes `room <first 8 hex digits of its id>`;
--   - a public room whose key an older public room already holds (the existing
--     duplicates: `LOBBY` beside `lobby`) is renamed to `<name> (2)`, `(3)`, ... until
--     its key is free. Private rooms keep their names (they are not unique); direct
--     rooms are named by their pair and need no key.
-- Until its key is filled (a room created by a node of an earlier version during a
-- rolling upgrade) a room is unique by its exact name, as before.
ALTER TABLE rooms ADD COLUMN name_key text;
DROP INDEX rooms_public_name_key;
CREATE UNIQUE INDEX rooms_public_name_key ON rooms ((coalesce(name_key, name)))
    WHERE visibility = 'public';
CREATE INDEX rooms_unkeyed_idx ON rooms (created_at, id)
    WHERE name_key IS NULL AND visibility <> 'direct';

-- Also: the edit entries of a message, found by the message. A deletion and retention
-- blank them (they carry the message's text); without this index each of those read
-- the rest of the room's stream.
CREATE INDEX messages_edit_entries_idx ON messages (room_id, target_id)
    WHERE kind = 'message_edited';
