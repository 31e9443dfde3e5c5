//! Exports for the server API (`GET /admin/users/:id/export`, `GET /admin/rooms/:id/
//! export`): NDJSON, one JSON object per line, written to any `io::Write` a page of
//! rows at a time, so a room of a million messages costs the node one page of memory.
//! Each export is a check step (the user or room exists; the audit row) and a write
//! step that may run for minutes while a slow client takes the bytes.
//!
//! A room is read by keyset pages over its primary key (`room_id, seq`), each page its
//! own statement: no transaction stays open while the client is slow, and the stream
//! is exported up to the room's last seq when the export began. A user's messages
//! have no key to page by in their order, so they are read through a server-side cursor
//! (a portal, [`PAGE`] rows per fetch) in one read-only repeatable-read transaction,
//! which also makes the profile, memberships and messages one consistent snapshot.

use crate::base::error::{ApiError, ROOM_NOT_FOUND, USER_NOT_FOUND};
use crate::base::model::iso;
use crate::pg::audit::{self, Actor};
use crate::pg::messages::{self, RANGE_SQL, from_row, message_columns};
use crate::pg::pool::Worker;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::io::{self, Write};
use uuid::Uuid;

/// Rows read per page (or per fetch of a cursor).
pub const PAGE: i64 = 1000;

/// A room whose stream is exported up to `upto`.
pub struct RoomExport {
    room: Uuid,
    upto: i64,
}

/// A user whose data is exported.
pub struct UserExport {
    user: Uuid,
}

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// A database error, with the server's message (`Display` says only "db error").
fn pg_err(e: postgres::Error) -> io::Error {
    match e.as_db_error() {
        Some(d) => io::Error::other(format!("{}: {}", d.code().code(), d.message())),
        None => io_err(e),
    }
}

fn line(out: &mut dyn Write, v: &impl serde::Serialize) -> io::Result<()> {
    // A write that failed keeps its kind: `BrokenPipe` is a client that left.
    serde_json::to_writer(&mut *out, v).map_err(|e| {
        e.io_error_kind()
            .map_or_else(|| io_err(&e), io::Error::from)
    })?;
    out.write_all(b"\n")
}

/// Check step of a room's export: the room exists; the export is audited.
pub fn room(w: &mut Worker, actor: &Actor, room: Uuid) -> Result<RoomExport, ApiError> {
    let mut tx = w.client()?.transaction()?;
    let row = tx
        .query_opt("SELECT last_seq FROM rooms WHERE id = $1", &[&room])?
        .ok_or(ROOM_NOT_FOUND)?;
    let upto: i64 = row.get(0);
    audit::record(
        &mut tx,
        actor,
        "room.export",
        Some(room),
        None,
        json!({"last_seq": upto}),
    )?;
    tx.commit()?;
    Ok(RoomExport { room, upto })
}

impl RoomExport {
    /// Writes every entry of the room's stream up to the seq of the check step, in seq
    /// order, each as a history page shows it.
    pub fn write(self, w: &mut Worker, out: &mut dyn Write) -> io::Result<()> {
        let mut after = 0;
        loop {
            let (c, st) = w.prepared(RANGE_SQL).map_err(io_err)?;
            let page =
                messages::range(c, &st, self.room, after, self.upto, PAGE).map_err(pg_err)?;
            for m in &page {
                line(out, m)?;
            }
            match page.last() {
                Some(m) if page.len() as i64 == PAGE => after = m.seq,
                _ => return Ok(()),
            }
        }
    }
}

/// Check step of a user's export: the user exists (and is not being deleted); the
/// export is audited.
pub fn user(w: &mut Worker, actor: &Actor, user: Uuid) -> Result<UserExport, ApiError> {
    let mut tx = w.client()?.transaction()?;
    tx.query_opt(
        "SELECT 1 FROM users WHERE id = $1 AND deleting_at IS NULL",
        &[&user],
    )?
    .ok_or(USER_NOT_FOUND)?;
    audit::record(&mut tx, actor, "user.export", None, Some(user), json!({}))?;
    tx.commit()?;
    Ok(UserExport { user })
}

const PROFILE_SQL: &str = "SELECT id, username, email, display_name, avatar_url, status_text,
        status_emoji, created_at, deactivated_at, external_id
     FROM users WHERE id = $1";

const MEMBERSHIPS_SQL: &str = "SELECT m.room_id, r.name, r.visibility, m.role, m.joined_at,
        m.last_read_seq, m.notifications_muted
     FROM room_members m JOIN rooms r ON r.id = m.room_id
     WHERE m.user_id = $1 ORDER BY m.joined_at, m.room_id";

/// The user's messages (not deletions: their content is gone), oldest first, each with
/// its earlier versions (three parallel arrays, null when never edited).
const MESSAGES_SQL: &str = concat!(
    "SELECT ",
    message_columns!(),
    ", (SELECT array_agg(e.version ORDER BY e.version) FROM message_edits e
         WHERE e.room_id = messages.room_id AND e.message_id = messages.id),
       (SELECT array_agg(e.content ORDER BY e.version) FROM message_edits e
         WHERE e.room_id = messages.room_id AND e.message_id = messages.id),
       (SELECT array_agg(e.edited_at ORDER BY e.version) FROM message_edits e
         WHERE e.room_id = messages.room_id AND e.message_id = messages.id)
     FROM messages WHERE user_id = $1 AND kind = 'message' AND deleted_at IS NULL
     ORDER BY id"
);

impl UserExport {
    /// Writes the profile, then the memberships, then every message the user wrote with
    /// its earlier versions; each line has a `type`.
    pub fn write(self, w: &mut Worker, out: &mut dyn Write) -> io::Result<()> {
        let c = w.client().map_err(io_err)?;
        let mut tx = c
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(pg_err)?;
        let Some(p) = tx.query_opt(PROFILE_SQL, &[&self.user]).map_err(pg_err)? else {
            return Err(io_err("the user is gone"));
        };
        let at = |t: Option<DateTime<Utc>>| t.map(iso);
        line(
            out,
            &json!({
                "type": "profile",
                "id": p.get::<_, Uuid>(0),
                "username": p.get::<_, String>(1),
                "email": p.get::<_, Option<String>>(2),
                "display_name": p.get::<_, Option<String>>(3),
                "avatar_url": p.get::<_, Option<String>>(4),
                "status_text": p.get::<_, Option<String>>(5),
                "status_emoji": p.get::<_, Option<String>>(6),
                "created_at": iso(p.get(7)),
                "deactivated_at": at(p.get(8)),
                "external_id": p.get::<_, Option<String>>(9),
            }),
        )?;
        let members = tx.bind(MEMBERSHIPS_SQL, &[&self.user]).map_err(pg_err)?;
        loop {
            let rows = tx.query_portal(&members, PAGE as i32).map_err(pg_err)?;
            for r in &rows {
                line(
                    out,
                    &json!({
                        "type": "membership",
                        "room_id": r.get::<_, Uuid>(0),
                        "room_name": r.get::<_, Option<String>>(1),
                        "visibility": r.get::<_, String>(2),
                        "role": r.get::<_, String>(3),
                        "joined_at": iso(r.get(4)),
                        "last_read_seq": r.get::<_, i64>(5),
                        "notifications_muted": r.get::<_, bool>(6),
                    }),
                )?;
            }
            if (rows.len() as i64) < PAGE {
                break;
            }
        }
        let msgs = tx.bind(MESSAGES_SQL, &[&self.user]).map_err(pg_err)?;
        let n = messages::COLUMNS;
        loop {
            let rows = tx.query_portal(&msgs, PAGE as i32).map_err(pg_err)?;
            for r in &rows {
                let m = from_row(r).map_err(pg_err)?;
                let mut v = serde_json::to_value(&m).map_err(io_err)?;
                let versions: Vec<Value> = match (
                    r.get::<_, Option<Vec<i32>>>(n),
                    r.get::<_, Option<Vec<String>>>(n + 1),
                    r.get::<_, Option<Vec<DateTime<Utc>>>>(n + 2),
                ) {
                    (Some(ns), Some(texts), Some(times)) => ns
                        .iter()
                        .zip(texts)
                        .zip(times)
                        .map(|((n, text), t)| {
                            json!({"version": n, "content": text, "replaced_at": iso(t)})
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                if let Value::Object(o) = &mut v {
                    o.insert("type".into(), "message".into());
                    o.insert("versions".into(), versions.into());
                }
                line(out, &v)?;
            }
            if (rows.len() as i64) < PAGE {
                break;
            }
        }
        tx.commit().map_err(pg_err)
    }
}
