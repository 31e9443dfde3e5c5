-- Search pages are newest first: a common word's page is found by walking the matches
-- from the newest message backwards instead of ranking every match (a word in half of
-- a million messages took seconds to rank). Message ids grow with time across rooms.
CREATE INDEX message_search_recent ON message_search (message_id);
