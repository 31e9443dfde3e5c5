-- Users a user has blocked. A block keeps the blocked user from opening a direct room
-- with the blocker, sending into their direct room and inviting the blocker; the
-- writer reads it (two primary-key probes, only for direct rooms) in the statement
-- that locks the batch's rooms. Listed newest first by the blocker's index.
CREATE TABLE user_blocks (
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, blocked_id),
    CHECK (user_id <> blocked_id)
);
CREATE INDEX user_blocks_newest_idx ON user_blocks (user_id, created_at DESC, blocked_id DESC);
CREATE INDEX user_blocks_blocked_idx ON user_blocks (blocked_id);
