-- Uploaded files, stored in PostgreSQL so that every node serves every file (no disk, no
-- object store). A file belongs to a room; once attached to a message, deleting the
-- message (or the room) deletes the file and its bytes.
CREATE TABLE files (
    id                  uuid PRIMARY KEY,
    room_id             uuid NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    uploader_id         uuid NOT NULL,
    name                text NOT NULL,
    -- Detected from the bytes (magic numbers), never the client's Content-Type.
    mime                text NOT NULL,
    size                bigint NOT NULL,
    -- Hex SHA-256 of the bytes: the ETag of downloads.
    sha256              text NOT NULL,
    width               integer,
    height              integer,
    created_at          timestamptz NOT NULL DEFAULT now(),
    attached_message_id bigint REFERENCES messages (id) ON DELETE CASCADE
);
-- A message's files (the cascade from messages and the deletion of a message look here).
CREATE INDEX files_message_idx ON files (attached_message_id)
    WHERE attached_message_id IS NOT NULL;
CREATE INDEX files_room_idx ON files (room_id);

-- The bytes, in chunks of 256 KiB: each row stays a modest TOAST value and a download
-- reads one chunk at a time instead of the whole file.
CREATE TABLE file_chunks (
    file_id uuid NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    n       integer NOT NULL,
    data    bytea NOT NULL,
    PRIMARY KEY (file_id, n)
);
-- Most uploads (images, PDFs) are compressed already: store them out of line without
-- PostgreSQL trying to compress them again.
ALTER TABLE file_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
