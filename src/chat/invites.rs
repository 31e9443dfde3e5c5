//! Pending invitations (run on worker threads): the caller's own, paged, and declined;
//! a room's, listed and revoked by those who may invite. An invitation is made by
//! `moderation::invite` and used up by joining; it counts only while its inviter may
//! still invite (`rooms::Standing`), so the lists show only those.

use crate::base::access::Action;
use crate::base::error::{ApiError, invalid};
use crate::base::model::{Identity, iso};
use crate::chat::direct::Peer;
use crate::chat::rooms::{ROOM_COLUMNS, Room, Standing, room_columns};
use crate::pg::pool::Worker;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// An invitation waiting for the caller.
#[derive(Debug, Serialize)]
pub struct Invite {
    /// The room.
    pub room: Room,
    /// Who invited (null once the account is gone).
    pub invited_by: Option<Peer>,
    /// When.
    pub created_at: String,
}

/// A page of the caller's invitations.
#[derive(Debug, Serialize)]
pub struct Invites {
    /// Newest first.
    pub invites: Vec<Invite>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// An invitation of a room, as its owner and admins see it.
#[derive(Debug, Serialize)]
pub struct Pending {
    /// The invited user.
    pub user: Peer,
    /// Who invited.
    pub invited_by: Option<Peer>,
    /// When.
    pub created_at: String,
}

/// A page of a room's invitations.
#[derive(Debug, Serialize)]
pub struct PendingPage {
    /// Newest first.
    pub invites: Vec<Pending>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// Parses a cursor of these pages: `<created µs>_<id>`.
fn parse_cursor(c: Option<&str>) -> Result<(Option<DateTime<Utc>>, Option<Uuid>), ApiError> {
    let Some(c) = c else {
        return Ok((None, None));
    };
    let bad = || invalid("cursor must be a next_cursor this route returned");
    let (t, id) = c.split_once('_').ok_or_else(bad)?;
    let at = t
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(bad)?;
    Ok((Some(at), Some(Uuid::parse_str(id).map_err(|_| bad())?)))
}

/// The cursor after a row created at `at` with `id`, when the page is full.
fn next(full: bool, last: Option<(DateTime<Utc>, Uuid)>) -> Option<String> {
    last.filter(|_| full)
        .map(|(at, id)| format!("{}_{id}", at.timestamp_micros()))
}

/// The caller's pending invitations, newest first, `limit` a page.
pub fn mine(
    w: &mut Worker,
    who: &Identity,
    cursor: Option<&str>,
    limit: i64,
) -> Result<Invites, ApiError> {
    let (at, id) = parse_cursor(cursor)?;
    let sql = concat!(
        "SELECT ",
        room_columns!(),
        ", u.id, u.username, i.created_at, u.display_name
         FROM room_invites i JOIN rooms r ON r.id = i.room_id
         JOIN room_members im ON im.room_id = i.room_id AND im.user_id = i.invited_by
                             AND im.role <> 'member'
         LEFT JOIN users u ON u.id = i.invited_by
         WHERE i.user_id = $1
           AND ($2::timestamptz IS NULL OR (i.created_at, i.room_id) < ($2, $3))
         ORDER BY i.created_at DESC, i.room_id DESC LIMIT $4"
    );
    let rows = w.client()?.query(sql, &[&who.user_id, &at, &id, &limit])?;
    let mut last = None;
    let invites: Vec<Invite> = rows
        .iter()
        .map(|r| {
            let room = Room::from_row(r);
            let created: DateTime<Utc> = r.get(ROOM_COLUMNS + 2);
            last = Some((created, room.id));
            Invite {
                room,
                invited_by: r.get::<_, Option<Uuid>>(ROOM_COLUMNS).map(|id| Peer {
                    id,
                    username: r.get(ROOM_COLUMNS + 1),
                    display_name: r.get(ROOM_COLUMNS + 3),
                }),
                created_at: iso(created),
            }
        })
        .collect();
    let full = invites.len() as i64 == limit;
    Ok(Invites {
        invites,
        next_cursor: next(full, last),
    })
}

/// Declines the caller's invitation to `room` (idempotent: none is fine).
pub fn decline(w: &mut Worker, who: &Identity, room: Uuid) -> Result<(), ApiError> {
    w.client()?.execute(
        "DELETE FROM room_invites WHERE room_id = $1 AND user_id = $2",
        &[&room, &who.user_id],
    )?;
    Ok(())
}

/// A room's pending invitations that count, newest first, `limit` a page: for those who
/// may invite.
pub fn pending(
    w: &mut Worker,
    who: &Identity,
    room: Uuid,
    cursor: Option<&str>,
    limit: i64,
) -> Result<PendingPage, ApiError> {
    let (at, id) = parse_cursor(cursor)?;
    let c = w.client()?;
    let mut tx = c.transaction()?;
    Standing::lock(&mut tx, room, who.user_id, Action::Invite(None))?;
    let rows = tx.query(
        "SELECT t.id, t.username, t.display_name, u.id, u.username, u.display_name,
                i.created_at
         FROM room_invites i JOIN users t ON t.id = i.user_id
         JOIN room_members im ON im.room_id = i.room_id AND im.user_id = i.invited_by
                             AND im.role <> 'member'
         LEFT JOIN users u ON u.id = i.invited_by
         WHERE i.room_id = $1
           AND ($2::timestamptz IS NULL OR (i.created_at, i.user_id) < ($2, $3))
         ORDER BY i.created_at DESC, i.user_id DESC LIMIT $4",
        &[&room, &at, &id, &limit],
    )?;
    let mut last = None;
    let invites: Vec<Pending> = rows
        .iter()
        .map(|r| {
            let created: DateTime<Utc> = r.get(6);
            last = Some((created, r.get(0)));
            Pending {
                user: Peer {
                    id: r.get(0),
                    username: r.get(1),
                    display_name: r.get(2),
                },
                invited_by: r.get::<_, Option<Uuid>>(3).map(|id| Peer {
                    id,
                    username: r.get(4),
                    display_name: r.get(5),
                }),
                created_at: iso(created),
            }
        })
        .collect();
    let full = invites.len() as i64 == limit;
    Ok(PendingPage {
        invites,
        next_cursor: next(full, last),
    })
}

/// Revokes `user`'s invitation to `room` (idempotent): for those who may invite.
pub fn revoke(w: &mut Worker, who: &Identity, room: Uuid, user: Uuid) -> Result<(), ApiError> {
    let c = w.client()?;
    let mut tx = c.transaction()?;
    Standing::lock(&mut tx, room, who.user_id, Action::Invite(None))?;
    tx.execute(
        "DELETE FROM room_invites WHERE room_id = $1 AND user_id = $2",
        &[&room, &user],
    )?;
    tx.commit()?;
    Ok(())
}
