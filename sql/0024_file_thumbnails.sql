-- Thumbnails of uploaded raster images (PNG, JPEG, GIF, WebP), made once when the upload
-- is stored (chat/thumbs.rs) and kept beside the file so that every node serves them. One
-- row per file at most; it goes with its file (a deleted message, retention, a deleted
-- room), so no thumbnail outlives what it shows.
CREATE TABLE file_thumbnails (
    file_id    uuid PRIMARY KEY REFERENCES files (id) ON DELETE CASCADE,
    -- image/png (images with transparency) or image/jpeg (opaque ones).
    mime       text NOT NULL,
    width      integer NOT NULL,
    height     integer NOT NULL,
    bytes      bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- PNG and JPEG are compressed already: out of line, without a second compression.
ALTER TABLE file_thumbnails ALTER COLUMN bytes SET STORAGE EXTERNAL;
