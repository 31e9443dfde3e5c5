-- Retention: messages older than a room's retention_days (null: the server's
-- retention.max_age_days; 0: forever) are deleted in small batches. first_seq is the
-- oldest seq still stored: everything below it was removed, so history and catch-up
-- can say so instead of showing a gap.
ALTER TABLE rooms ADD COLUMN retention_days integer
    CHECK (retention_days IS NULL OR retention_days BETWEEN 0 AND 36500);
ALTER TABLE rooms ADD COLUMN first_seq bigint NOT NULL DEFAULT 1;
