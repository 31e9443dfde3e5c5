//! Reports (run on worker threads): a member reports a message to the room's owner and
//! admins, once per message; they list the room's reports and resolve each with an
//! action done by the same use case as its direct route (a deletion by
//! `edits::apply`, a sanction by `moderation::act`), then the report is closed. A
//! reporter learns nothing of other reports. A new report is a `report.created` webhook
//! event (the outbox row in the report's transaction). The product's backend lists every
//! room's reports and resolves them with an API key (`Scope::Server`): the same steps,
//! the action done as the key (`chat/review.rs`), audited with the key as actor.

use crate::base::access::{Action, Sanction};
use crate::base::error::{ApiError, MESSAGE_NOT_FOUND};
use crate::base::model::{Identity, iso};
use crate::chat::edits::{self, Change};
use crate::chat::messages::Rules;
use crate::chat::moderation;
use crate::chat::review;
use crate::chat::rooms::Standing;
use crate::pg::audit::{self, Actor};
use crate::pg::outbox;
use crate::pg::pool::Worker;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

/// Why a message is reported.
pub const REASONS: [&str; 3] = ["spam", "abuse", "other"];

/// Most characters in a report's or a resolution's note.
pub const MAX_NOTE: usize = 1000;

/// What a resolution does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Nothing: the report is closed.
    Dismiss,
    /// Delete the reported message.
    DeleteMessage,
    /// Mute, kick or ban its author.
    Sanction(Sanction),
}

impl Resolution {
    /// Parses `action` of the resolve body.
    pub fn parse(s: &str) -> Option<Resolution> {
        Some(match s {
            "dismiss" => Resolution::Dismiss,
            "delete_message" => Resolution::DeleteMessage,
            "mute" => Resolution::Sanction(Sanction::Mute),
            "kick" => Resolution::Sanction(Sanction::Kick),
            "ban" => Resolution::Sanction(Sanction::Ban),
            _ => return None,
        })
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Dismiss => "dismiss",
            Resolution::DeleteMessage => "delete_message",
            Resolution::Sanction(s) => s.verb(),
        }
    }
}

/// A report as owners and admins see it.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Id.
    pub id: Uuid,
    /// The room of the reported message.
    pub room_id: Uuid,
    /// The reported message.
    pub message_id: i64,
    /// Its author.
    pub author_id: Option<Uuid>,
    /// Its content now (empty once deleted).
    pub content: Option<String>,
    /// Who reported it.
    pub reporter: Uuid,
    /// `spam`, `abuse` or `other`.
    pub reason: String,
    /// The reporter's note.
    pub note: Option<String>,
    /// When.
    pub created_at: String,
    /// `open` or `resolved`.
    pub status: &'static str,
    /// The resolution's action, once resolved.
    pub resolution: Option<String>,
    /// Who resolved it.
    pub resolved_by: Option<Uuid>,
    /// When.
    pub resolved_at: Option<String>,
}

/// A report's columns, as [`from_row`] reads them (a macro, so that the queries are
/// constant text).
macro_rules! columns {
    () => {
        "r.id, r.message_id, m.user_id, m.content, r.reporter, r.reason, r.note,
         r.created_at, r.resolution, r.resolved_by, r.resolved_at, r.room_id"
    };
}

fn from_row(r: &postgres::Row) -> Report {
    let created: DateTime<Utc> = r.get(7);
    let resolved: Option<DateTime<Utc>> = r.get(10);
    Report {
        id: r.get(0),
        room_id: r.get(11),
        message_id: r.get(1),
        author_id: r.get(2),
        content: r.get(3),
        reporter: r.get(4),
        reason: r.get(5),
        note: r.get(6),
        created_at: iso(created),
        status: if resolved.is_some() {
            "resolved"
        } else {
            "open"
        },
        resolution: r.get(8),
        resolved_by: r.get(9),
        resolved_at: resolved.map(iso),
    }
}

/// Checks a note.
pub fn check_note(note: &Option<String>) -> Result<(), String> {
    if note.as_ref().is_some_and(|n| n.chars().count() > MAX_NOTE) {
        return Err(format!("note must be at most {MAX_NOTE} characters"));
    }
    Ok(())
}

/// Reports message `id` of `room` (any member); `already_reported` the second time.
/// Returns the report's id.
pub fn report(
    w: &mut Worker,
    who: &Identity,
    room: Uuid,
    id: i64,
    reason: &str,
    note: Option<String>,
) -> Result<Uuid, ApiError> {
    let c = w.client()?;
    let mut tx = c.transaction()?;
    Standing::lock(&mut tx, room, who.user_id, Action::Report)?;
    let found = tx.query_opt(
        "SELECT user_id, content FROM messages WHERE id = $1 AND room_id = $2
           AND kind = 'message' AND deleted_at IS NULL",
        &[&id, &room],
    )?;
    let found = found.ok_or(MESSAGE_NOT_FOUND)?;
    let report = Uuid::now_v7();
    let created = tx.query_opt(
        "INSERT INTO message_reports (room_id, id, message_id, reporter, reason, note)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING created_at",
        &[&room, &report, &id, &who.user_id, &reason, &note],
    )?;
    let Some(created) = created else {
        return Err(ApiError::Conflict(
            "already_reported",
            "You already reported this message",
        ));
    };
    // The product's backend learns of it once it commits (the report as owners list it).
    let data = Report {
        id: report,
        room_id: room,
        message_id: id,
        author_id: found.get(0),
        content: found.get(1),
        reporter: who.user_id,
        reason: reason.to_string(),
        note,
        created_at: iso(created.get(0)),
        status: "open",
        resolution: None,
        resolved_by: None,
        resolved_at: None,
    };
    let data = serde_json::to_value(&data).map_err(|_| ApiError::Internal)?;
    outbox::record(&mut tx, "report.created", Some(room), &data)?;
    tx.commit()?;
    Ok(report)
}

/// The room's reports (owners and admins), oldest first: the open ones, or all.
pub fn list(
    w: &mut Worker,
    who: &Identity,
    room: Uuid,
    open: bool,
) -> Result<Vec<Report>, ApiError> {
    let c = w.client()?;
    let mut tx = c.transaction()?;
    Standing::lock(&mut tx, room, who.user_id, Action::ReviewReports)?;
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM message_reports r
         LEFT JOIN messages m ON m.room_id = r.room_id AND m.id = r.message_id
         WHERE r.room_id = $1 AND ($2 = false OR r.resolved_at IS NULL)
         ORDER BY r.created_at, r.id LIMIT 1000"
    );
    let rows = tx.query(sql, &[&room, &open])?;
    Ok(rows.iter().map(from_row).collect())
}

/// Who resolves a report, and where it is looked for.
pub enum Scope {
    /// An owner or admin of the room, through the room's route.
    Room(Identity, Uuid),
    /// The product's backend with an API key: any room's report.
    Server(Actor),
}

/// Resolves report `id` (owners and admins of its room, or the server API): does
/// `action` through its own use case (which asks the access rule again, with its
/// target; as the key for the server API), then closes the report.
/// `report_not_found`; `already_resolved`.
pub fn resolve(
    w: &mut Worker,
    scope: &Scope,
    id: Option<Uuid>,
    action: Resolution,
    note: Option<String>,
    rules: Rules,
) -> Result<Report, ApiError> {
    let (room, message, author) = {
        let c = w.client()?;
        let mut tx = c.transaction()?;
        match scope {
            Scope::Room(who, room) => {
                Standing::lock(&mut tx, *room, who.user_id, Action::ReviewReports)?;
                let (m, a) = open_report(&mut tx, *room, id.ok_or(REPORT_NOT_FOUND)?)?;
                (*room, m, a)
            }
            Scope::Server(_) => {
                let id = id.ok_or(REPORT_NOT_FOUND)?;
                let room = tx
                    .query_opt("SELECT room_id FROM message_reports WHERE id = $1", &[&id])?
                    .ok_or(REPORT_NOT_FOUND)?
                    .get(0);
                let (m, a) = open_report(&mut tx, room, id)?;
                (room, m, a)
            }
        }
    };
    let id = id.ok_or(REPORT_NOT_FOUND)?;
    match (action, scope) {
        (Resolution::Dismiss, _) => {}
        (Resolution::DeleteMessage, Scope::Room(who, _)) => {
            edits::apply(w, who, room, message, Change::Delete, None, rules)?;
        }
        (Resolution::DeleteMessage, Scope::Server(key)) => {
            review::delete(w, key, room, message)?;
        }
        (Resolution::Sanction(s), scope) => {
            let author = author.ok_or(MESSAGE_NOT_FOUND)?;
            match scope {
                Scope::Room(who, _) => moderation::act(w, who, room, author, s)?,
                Scope::Server(key) => review::sanction(w, key, room, author, s)?,
            }
        }
    }
    let (by, actor) = match scope {
        Scope::Room(who, _) => (who.user_id, Actor::user(who)),
        Scope::Server(key) => (Uuid::nil(), key.clone()),
    };
    let c = w.client()?;
    let mut tx = c.transaction()?;
    let n = tx.execute(
        "UPDATE message_reports SET resolved_by = $3, resolved_at = now(), resolution = $4,
                resolution_note = $5
         WHERE room_id = $1 AND id = $2 AND resolved_at IS NULL",
        &[&room, &id, &by, &action.as_str(), &note],
    )?;
    if n == 0 {
        return Err(ALREADY_RESOLVED);
    }
    // The resolution in the audit log, with the report (the action itself, when it is
    // a moderation, has its own row from its use case).
    let data = json!({"report_id": id, "message_id": message, "resolution": action.as_str()});
    audit::record(&mut tx, &actor, "report.resolve", Some(room), author, data)?;
    tx.commit()?;
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM message_reports r
         LEFT JOIN messages m ON m.room_id = r.room_id AND m.id = r.message_id
         WHERE r.room_id = $1 AND r.id = $2"
    );
    Ok(from_row(&c.query_one(sql, &[&room, &id])?))
}

/// A page of every room's reports (the server API), oldest first.
#[derive(Debug, Serialize)]
pub struct ReportPage {
    /// The reports.
    pub reports: Vec<Report>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// Every room's reports for the server API, oldest first, open ones or all, `limit` a
/// page after `cursor` (`<created µs>_<id>`): one statement on the reports' time index.
pub fn list_all(
    w: &mut Worker,
    open: bool,
    cursor: Option<&str>,
    limit: i64,
) -> Result<ReportPage, ApiError> {
    let (at, after) = match cursor {
        None => (None, None),
        Some(c) => {
            let bad =
                || crate::base::error::invalid("cursor must be a next_cursor this route returned");
            let (t, id) = c.split_once('_').ok_or_else(bad)?;
            let at = t
                .parse::<i64>()
                .ok()
                .and_then(DateTime::from_timestamp_micros)
                .ok_or_else(bad)?;
            (Some(at), Some(Uuid::parse_str(id).map_err(|_| bad())?))
        }
    };
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM message_reports r
         LEFT JOIN messages m ON m.room_id = r.room_id AND m.id = r.message_id
         WHERE ($1 = false OR r.resolved_at IS NULL)
           AND ($2::timestamptz IS NULL OR (r.created_at, r.id) > ($2, $3))
         ORDER BY r.created_at, r.id LIMIT $4"
    );
    let rows = w.client()?.query(sql, &[&open, &at, &after, &limit])?;
    let reports: Vec<Report> = rows.iter().map(from_row).collect();
    let next_cursor = match reports.last() {
        Some(last) if reports.len() as i64 == limit => {
            let t: DateTime<Utc> = rows[rows.len() - 1].get(7);
            Some(format!("{}_{}", t.timestamp_micros(), last.id))
        }
        _ => None,
    };
    Ok(ReportPage {
        reports,
        next_cursor,
    })
}

const REPORT_NOT_FOUND: ApiError = ApiError::NotFound("report_not_found", "Report not found");

const ALREADY_RESOLVED: ApiError =
    ApiError::Conflict("already_resolved", "This report is already resolved");

/// The message and its author of an open report.
fn open_report(
    c: &mut impl postgres::GenericClient,
    room: Uuid,
    id: Uuid,
) -> Result<(i64, Option<Uuid>), ApiError> {
    let row = c.query_opt(
        "SELECT r.message_id, m.user_id, r.resolved_at IS NOT NULL FROM message_reports r
         LEFT JOIN messages m ON m.room_id = r.room_id AND m.id = r.message_id
         WHERE r.room_id = $1 AND r.id = $2",
        &[&room, &id],
    )?;
    let Some(r) = row else {
        return Err(REPORT_NOT_FOUND);
    };
    if r.get::<_, bool>(2) {
        return Err(ALREADY_RESOLVED);
    }
    Ok((r.get(0), r.get(1)))
}
