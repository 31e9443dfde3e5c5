-- Usernames are unique whatever their case: `username_key` is the server's case-folded
-- form of the NFC-normalised, trimmed name (computed in the server, not by lower(),
-- whose rules follow the database's locale). A database holding two names that differ
-- only by case stops this migration: rename one, then start again.
ALTER TABLE users ADD COLUMN username_key text;
UPDATE users SET username_key = lower(username);
ALTER TABLE users ALTER COLUMN username_key SET NOT NULL;
CREATE UNIQUE INDEX users_username_key_idx ON users (username_key);
