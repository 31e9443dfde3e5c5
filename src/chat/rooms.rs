//! Rooms and membership (run on worker threads).

use crate::base::error::{ApiError, NOT_MEMBER, ROOM_NOT_FOUND, check};
use crate::base::model::{Identity, iso};
use crate::pg::is_unique_violation;
use crate::pg::notify::{self, Event};
use crate::pg::pool::Worker;
use chrono::{DateTime, Utc};
use postgres::{Client, GenericClient};
use serde::Serialize;
use uuid::Uuid;

/// Columns of `rooms` in the order [`Room::from_row`] reads them.
macro_rules! room_columns {
    () => {
        "id, name, description, created_by, created_at"
    };
}
const LIST_SQL: &str = concat!(
    "SELECT ",
    room_columns!(),
    " FROM rooms ORDER BY created_at DESC, id DESC LIMIT 1000"
);
const GET_SQL: &str = concat!("SELECT ", room_columns!(), " FROM rooms WHERE id = $1");
const CREATE_SQL: &str = concat!(
    "INSERT INTO rooms (id, name, description, created_by) VALUES ($1, $2, $3, $4) RETURNING ",
    room_columns!()
);

/// A room as clients see it.
#[derive(Debug, Serialize)]
pub struct Room {
    /// Room id.
    pub id: Uuid,
    /// Unique name.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Creator (null once the account is gone).
    pub created_by: Option<Uuid>,
    /// Creation time.
    pub created_at: String,
}

impl Room {
    fn from_row(row: &postgres::Row) -> Room {
        let created: DateTime<Utc> = row.get(4);
        Room {
            id: row.get(0),
            name: row.get(1),
            description: row.get(2),
            created_by: row.get(3),
            created_at: iso(created),
        }
    }
}

/// A new room's fields.
pub struct NewRoom {
    /// Name (trimmed before use).
    pub name: String,
    /// Description.
    pub description: Option<String>,
}

impl NewRoom {
    /// Every rule the request breaks, one line each.
    pub fn problems(&self) -> Vec<String> {
        let mut errs = Vec::new();
        let n = self.name.trim().chars().count();
        if !(1..=100).contains(&n) {
            errs.push("name must be 1 to 100 characters".into());
        }
        if self
            .description
            .as_ref()
            .is_some_and(|d| d.chars().count() > 1000)
        {
            errs.push("description must be at most 1000 characters".into());
        }
        errs
    }
}

/// A member as `GET /rooms/:id/members` shows it.
#[derive(Debug, Serialize)]
pub struct Member {
    /// User id.
    pub id: Uuid,
    /// Username.
    pub username: String,
    /// When the user joined.
    pub joined_at: String,
    /// Has a joined socket somewhere.
    pub online: bool,
}

/// Every room, newest first (at most 1000).
pub fn list(w: &mut Worker) -> Result<Vec<Room>, ApiError> {
    let rows = w.client()?.query(LIST_SQL, &[])?;
    Ok(rows.iter().map(Room::from_row).collect())
}

/// Creates a room; the creator becomes a member.
pub fn create(w: &mut Worker, who: &Identity, new: NewRoom) -> Result<Room, ApiError> {
    check(new.problems())?;
    let c = w.client()?;
    let mut tx = c.transaction()?;
    let row = match tx.query_one(
        CREATE_SQL,
        &[
            &Uuid::now_v7(),
            &new.name.trim(),
            &new.description,
            &who.user_id,
        ],
    ) {
        Ok(r) => r,
        Err(e) if is_unique_violation(&e, "rooms_name_key") => {
            return Err(ApiError::Conflict(
                "room_name_taken",
                "Room name already taken",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let room = Room::from_row(&row);
    tx.execute(
        "INSERT INTO room_members (room_id, user_id) VALUES ($1, $2)",
        &[&room.id, &who.user_id],
    )?;
    tx.commit()?;
    Ok(room)
}

/// One room.
pub fn get(w: &mut Worker, room: Uuid) -> Result<Room, ApiError> {
    match w.client()?.query_opt(GET_SQL, &[&room])? {
        Some(row) => Ok(Room::from_row(&row)),
        None => Err(ROOM_NOT_FOUND),
    }
}

/// Joins a room (idempotent).
pub fn join(w: &mut Worker, who: &Identity, room: Uuid) -> Result<(), ApiError> {
    let rows = w.client()?.query(
        "WITH r AS (SELECT id FROM rooms WHERE id = $1),
              ins AS (INSERT INTO room_members (room_id, user_id) SELECT id, $2 FROM r
                      ON CONFLICT DO NOTHING)
         SELECT 1 FROM r",
        &[&room, &who.user_id],
    )?;
    if rows.is_empty() {
        return Err(ROOM_NOT_FOUND);
    }
    Ok(())
}

/// Leaves a room; live delivery to the user's sockets in the room stops too.
pub fn leave(w: &mut Worker, who: &Identity, room: Uuid) -> Result<(), ApiError> {
    let c = w.client()?;
    let mut tx = c.transaction()?;
    if tx
        .query_opt("SELECT 1 FROM rooms WHERE id = $1", &[&room])?
        .is_none()
    {
        return Err(ROOM_NOT_FOUND);
    }
    let n = tx.execute(
        "DELETE FROM room_members WHERE room_id = $1 AND user_id = $2",
        &[&room, &who.user_id],
    )?;
    if n > 0 {
        notify::publish(
            &mut tx,
            &[Event::Kick {
                room,
                user: who.user_id,
            }],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Whether the room exists and the user is a member of it.
pub fn membership(
    c: &mut impl GenericClient,
    room: Uuid,
    user: Uuid,
) -> Result<(bool, bool), ApiError> {
    let row = c.query_opt(
        "SELECT EXISTS (SELECT 1 FROM room_members WHERE room_id = r.id AND user_id = $2)
         FROM rooms r WHERE r.id = $1",
        &[&room, &user],
    )?;
    Ok(match row {
        Some(r) => (true, r.get(0)),
        None => (false, false),
    })
}

/// Fails unless the room exists and the user is a member.
pub fn require_member(c: &mut Client, room: Uuid, user: Uuid) -> Result<(), ApiError> {
    match membership(c, room, user)? {
        (false, _) => Err(ROOM_NOT_FOUND),
        (true, false) => Err(NOT_MEMBER),
        (true, true) => Ok(()),
    }
}

/// A room's members, each with an `online` flag from presence rows.
pub fn members(w: &mut Worker, who: &Identity, room: Uuid) -> Result<Vec<Member>, ApiError> {
    let c = w.client()?;
    require_member(c, room, who.user_id)?;
    let rows = c.query(
        "SELECT u.id, u.username, m.joined_at,
                EXISTS (SELECT 1 FROM presence p WHERE p.room_id = m.room_id AND p.user_id = u.id)
         FROM room_members m JOIN users u ON u.id = m.user_id
         WHERE m.room_id = $1 ORDER BY m.joined_at, u.id LIMIT 10000",
        &[&room],
    )?;
    Ok(rows
        .iter()
        .map(|r| Member {
            id: r.get(0),
            username: r.get(1),
            joined_at: iso(r.get(2)),
            online: r.get(3),
        })
        .collect())
}
