-- The server API's list of every room's reports (oldest first, open ones or all) and
-- its resolution by report id alone.
CREATE INDEX message_reports_all_idx ON message_reports (created_at, id);
CREATE INDEX message_reports_open_all_idx ON message_reports (created_at, id)
    WHERE resolved_at IS NULL;
CREATE UNIQUE INDEX message_reports_id_idx ON message_reports (id);
