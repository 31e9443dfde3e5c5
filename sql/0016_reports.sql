-- Reports of messages by members to the room's owner and admins: one per message and
-- reporter; the open ones of a room are read by one indexed query, oldest first.
CREATE TABLE message_reports (
    room_id         uuid NOT NULL,
    id              uuid NOT NULL,
    message_id      bigint NOT NULL,
    reporter        uuid NOT NULL,
    reason          text NOT NULL CHECK (reason IN ('spam', 'abuse', 'other')),
    note            text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    resolved_by     uuid,
    resolved_at     timestamptz,
    resolution      text,
    resolution_note text,
    PRIMARY KEY (room_id, id),
    UNIQUE (room_id, message_id, reporter)
);
CREATE INDEX message_reports_open_idx ON message_reports (room_id, created_at, id)
    WHERE resolved_at IS NULL;
