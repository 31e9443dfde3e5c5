-- Search indexing off the send path. Computing a message's tsvector and inserting it
-- into a GIN index cost more than storing the message itself, so a message is no
-- longer indexed in the transaction that stores it: an indexer (one node at a time)
-- follows each room's stream in seq order and keeps message_search current: messages
-- are added, edits re-indexed, deletions removed (the deleting transaction also
-- removes its row at once). search_progress holds how far each room was indexed.
ALTER TABLE messages DROP COLUMN search;

-- Keyed by room first, like every table a distributed PostgreSQL would shard by room.
CREATE TABLE message_search (
    room_id    uuid NOT NULL,
    message_id bigint NOT NULL,
    search     tsvector NOT NULL,
    PRIMARY KEY (room_id, message_id)
);
CREATE INDEX message_search_idx ON message_search USING gin (search);

CREATE TABLE search_progress (
    room_id     uuid PRIMARY KEY,
    indexed_seq bigint NOT NULL
);

-- Another text search configuration: the index starts over and the indexer rebuilds
-- it in the background (no table rewrite).
CREATE OR REPLACE FUNCTION chatd_search_language(lang regconfig) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT value FROM settings WHERE key = 'search_language') = lang::text THEN
        RETURN;
    END IF;
    TRUNCATE message_search, search_progress;
    UPDATE settings SET value = lang::text WHERE key = 'search_language';
END $$;
