-- Messages after send: edits, deletions, reactions, replies and threads, attachments,
-- search. Every change to a message is itself an entry of the room's stream (its own
-- seq); the changed message's row is updated in the same transaction so that history
-- pages show the current state.

-- On an edit, deletion or reaction entry: the message it changes.
ALTER TABLE messages ADD COLUMN target_id bigint;
-- On a message: its last edit, its deletion (a tombstone keeps its seq, no content).
ALTER TABLE messages ADD COLUMN edited_at timestamptz;
ALTER TABLE messages ADD COLUMN deleted_at timestamptz;
-- A reply names the message it answers (same room); a thread is the replies to a root.
ALTER TABLE messages ADD COLUMN reply_to bigint;
ALTER TABLE messages ADD COLUMN reply_count integer NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN last_reply_at timestamptz;
-- [{url, name, mime, size}]: metadata only, the server stores no file.
ALTER TABLE messages ADD COLUMN attachments jsonb;
-- Aggregated reactions on a message: {"<emoji>": count}.
ALTER TABLE messages ADD COLUMN reactions jsonb;
CREATE INDEX messages_thread_idx ON messages (room_id, reply_to, seq) WHERE reply_to IS NOT NULL;

-- Previous versions of edited messages (removed with the message's content on delete).
CREATE TABLE message_edits (
    message_id bigint NOT NULL,
    room_id    uuid NOT NULL,
    version    integer NOT NULL,
    content    text NOT NULL,
    edited_at  timestamptz NOT NULL,
    PRIMARY KEY (message_id, version)
);

-- One row per (message, user, emoji).
CREATE TABLE message_reactions (
    message_id bigint NOT NULL,
    user_id    uuid NOT NULL,
    emoji      text NOT NULL,
    room_id    uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id, user_id, emoji)
);

-- Full-text search over live messages (system entries, change entries and deleted
-- messages index nothing). The text search configuration is 'simple' (no stemming,
-- every language); `search.language` in the configuration rebuilds it with another.
ALTER TABLE messages ADD COLUMN search tsvector GENERATED ALWAYS AS (
    to_tsvector('simple', CASE WHEN kind = 'message' AND deleted_at IS NULL THEN content ELSE '' END)
) STORED;
CREATE INDEX messages_search_idx ON messages USING gin (search);

-- The configured search language, so a change of it is noticed at start-up.
CREATE TABLE settings (key text PRIMARY KEY, value text NOT NULL);
INSERT INTO settings VALUES ('search_language', 'simple');

-- Rebuilds the search column and index with another text search configuration (the
-- configuration's `search.language`): a table rewrite, done once per change.
CREATE FUNCTION chatd_search_language(lang regconfig) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT value FROM settings WHERE key = 'search_language') = lang::text THEN
        RETURN;
    END IF;
    ALTER TABLE messages DROP COLUMN search;
    EXECUTE format(
        'ALTER TABLE messages ADD COLUMN search tsvector GENERATED ALWAYS AS (to_tsvector(%L::regconfig, CASE WHEN kind = ''message'' AND deleted_at IS NULL THEN content ELSE '''' END)) STORED',
        lang::text);
    CREATE INDEX messages_search_idx ON messages USING gin (search);
    UPDATE settings SET value = lang::text WHERE key = 'search_language';
END $$;
