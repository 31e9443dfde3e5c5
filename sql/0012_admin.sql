-- The server API for the product's backend (docs/PROTOCOL.md §13).
--
-- The audit log: every action of an API key, and the room moderation of users (kicks,
-- bans, mutes, roles, deleting another's message, room settings, deletion), each row
-- written in the transaction of the action it records. The actor is an API key (by its
-- configured name) or a user (by id, with the username it had then). Read newest first
-- by id, so the primary key is the only index it needs.
CREATE TABLE audit_log (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at             timestamptz NOT NULL DEFAULT now(),
    actor_kind     text NOT NULL CHECK (actor_kind IN ('api_key', 'user')),
    actor_id       text NOT NULL,
    actor_name     text NOT NULL,
    action         text NOT NULL,
    room_id        uuid,
    target_user_id uuid,
    data           jsonb NOT NULL DEFAULT '{}'
);

-- A deactivated account keeps its rows; its sessions are revoked, and logins, refreshes,
-- new tokens and the provider's tokens are refused until it is reactivated.
ALTER TABLE users ADD COLUMN deactivated_at timestamptz;

-- Accounts created by the server API have neither a password nor, necessarily, an id at
-- the identity provider: the product's backend mints their tokens.
ALTER TABLE users DROP CONSTRAINT users_credentials;

-- A user being deleted (DELETE /admin/users/:id): deactivated at once, then removed in
-- small transactions by one node at a time (chat/erase.rs), with `erase` its messages
-- first. What remains to do is read from the tables each time, so a node killed halfway
-- leaves work another node (or the restarted one) resumes.
ALTER TABLE users ADD COLUMN deleting_at timestamptz, ADD COLUMN erase boolean NOT NULL DEFAULT false;
CREATE INDEX users_deleting_idx ON users (deleting_at) WHERE deleting_at IS NOT NULL;
-- The messages and reactions of one user, found without reading every room.
CREATE INDEX messages_user_idx ON messages (user_id) WHERE kind = 'message' AND deleted_at IS NULL;
CREATE INDEX message_reactions_user_idx ON message_reactions (user_id);
