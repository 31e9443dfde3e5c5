-- Accounts of the product's own identity provider, profiles, and the user directory.
--
-- An external account is found by (external_issuer, external_id): the issuer of the
-- product's tokens and their `sub`. It has no email and no password; a local account
-- has both and no external id.
ALTER TABLE users
    ALTER COLUMN email DROP NOT NULL,
    ALTER COLUMN password_hash DROP NOT NULL,
    ADD COLUMN external_issuer text,
    ADD COLUMN external_id     text,
    ADD COLUMN display_name    text,
    ADD COLUMN avatar_url      text,
    ADD COLUMN status_text     text,
    ADD COLUMN status_emoji    text,
    -- The directory's search keys: the username and the display name folded by the
    -- server (NFKD, accents removed, lower case; computed in the server like
    -- username_key, so the database's locale plays no part). Byte order ("C") lets one
    -- plain btree index serve both `LIKE 'prefix%'` and ORDER BY, so a prefix search
    -- reads only the rows it returns.
    ADD COLUMN username_fold   text COLLATE "C",
    ADD COLUMN display_fold    text COLLATE "C",
    ADD CONSTRAINT users_external_pair
        CHECK ((external_issuer IS NULL) = (external_id IS NULL)),
    ADD CONSTRAINT users_credentials
        CHECK (external_id IS NOT NULL OR (email IS NOT NULL AND password_hash IS NOT NULL));
CREATE UNIQUE INDEX users_external_idx ON users (external_issuer, external_id)
    WHERE external_id IS NOT NULL;
CREATE INDEX users_username_fold_idx ON users (username_fold);
CREATE INDEX users_display_fold_idx ON users (display_fold) WHERE display_fold IS NOT NULL;
-- Existing accounts get their folded username from the server at its next start
-- (rows found through this index, which is empty afterwards).
CREATE INDEX users_unfolded_idx ON users (id) WHERE username_fold IS NULL;
