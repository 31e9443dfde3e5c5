-- Upload limits: the quotas sum the sizes of a user's and of a room's files (index-only
-- scans of these two indexes), and the sweeper finds files never attached to a message.
CREATE INDEX files_uploader_size_idx ON files (uploader_id) INCLUDE (size);
CREATE INDEX files_room_size_idx ON files (room_id) INCLUDE (size);
DROP INDEX files_room_idx;
CREATE INDEX files_unattached_idx ON files (created_at) WHERE attached_message_id IS NULL;

-- Each user's uploads started in the current minute, counted across the cluster
-- (`files.uploads_per_minute`). A rate limiter's state: unlogged (no WAL, not on the
-- standbys, emptied after a crash), one row per user who uploaded lately (the sweeper
-- removes older windows).
CREATE UNLOGGED TABLE upload_windows (
    user_id      uuid PRIMARY KEY,
    window_start timestamptz NOT NULL,
    n            integer NOT NULL
);
