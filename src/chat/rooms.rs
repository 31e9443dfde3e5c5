//! Rooms and membership over REST (run on worker threads).

use crate::auth::tokens::Identity;
use crate::chat::messages;
use crate::error::{ApiError, NOT_MEMBER, ROOM_NOT_FOUND, is_unique_violation};
use crate::http::body::{Body, finish};
use crate::http::response::Response;
use crate::pg::pool::Worker;
use chrono::{DateTime, Utc};
use postgres::{Client, GenericClient};
use serde_json::{Value, json};
use uuid::Uuid;

/// Columns of `rooms` in the order `room_json` reads them.
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

fn room_json(row: &postgres::Row) -> Value {
    let created: DateTime<Utc> = row.get(4);
    json!({
        "id": row.get::<_, Uuid>(0),
        "name": row.get::<_, String>(1),
        "description": row.get::<_, Option<String>>(2),
        "created_by": row.get::<_, Option<Uuid>>(3),
        "created_at": messages::iso(created),
    })
}

/// GET /rooms: newest first (at most 1000).
pub fn list(w: &mut Worker) -> Result<Response, ApiError> {
    let rows = w.client()?.query(LIST_SQL, &[])?;
    let rooms: Vec<Value> = rows.iter().map(room_json).collect();
    Ok(Response::json(200, &rooms))
}

/// POST /rooms: the creator becomes a member.
pub fn create(w: &mut Worker, who: &Identity, body: &[u8]) -> Result<Response, ApiError> {
    let body = Body::parse(body)?;
    let mut errs = Vec::new();
    let name = body.req_str("name", &mut errs);
    let description = body.opt_str("description", &mut errs);
    let n = name.trim().chars().count();
    if !(1..=100).contains(&n) {
        errs.push("name must be 1 to 100 characters".into());
    }
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 1000)
    {
        errs.push("description must be at most 1000 characters".into());
    }
    finish(errs)?;
    let c = w.client()?;
    let mut tx = c.transaction()?;
    let row = match tx.query_one(
        CREATE_SQL,
        &[&Uuid::now_v7(), &name.trim(), &description, &who.user_id],
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
    let id: Uuid = row.get(0);
    tx.execute(
        "INSERT INTO room_members (room_id, user_id) VALUES ($1, $2)",
        &[&id, &who.user_id],
    )?;
    tx.commit()?;
    Ok(Response::json(201, &room_json(&row)))
}

/// GET /rooms/:id
pub fn get(w: &mut Worker, room: Uuid) -> Result<Response, ApiError> {
    match w.client()?.query_opt(GET_SQL, &[&room])? {
        Some(row) => Ok(Response::json(200, &room_json(&row))),
        None => Err(ROOM_NOT_FOUND),
    }
}

/// POST /rooms/:id/join: idempotent.
pub fn join(w: &mut Worker, who: &Identity, room: Uuid) -> Result<Response, ApiError> {
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
    Ok(Response::json(201, &json!({ "success": true })))
}

/// POST /rooms/:id/leave: live delivery to the user's sockets in the room stops too.
pub fn leave(w: &mut Worker, who: &Identity, room: Uuid) -> Result<Response, ApiError> {
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
        let payload = json!({ "t": "kick", "r": room, "u": who.user_id }).to_string();
        tx.execute(
            "SELECT pg_notify($1, $2)",
            &[&crate::pg::EVENTS_CHANNEL, &payload],
        )?;
    }
    tx.commit()?;
    Ok(Response::json(201, &json!({ "success": true })))
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

/// GET /rooms/:id/members: each member with an `online` flag from presence rows.
pub fn members(w: &mut Worker, who: &Identity, room: Uuid) -> Result<Response, ApiError> {
    let c = w.client()?;
    require_member(c, room, who.user_id)?;
    let rows = c.query(
        "SELECT u.id, u.username, m.joined_at,
                EXISTS (SELECT 1 FROM presence p WHERE p.room_id = m.room_id AND p.user_id = u.id)
         FROM room_members m JOIN users u ON u.id = m.user_id
         WHERE m.room_id = $1 ORDER BY m.joined_at, u.id LIMIT 10000",
        &[&room],
    )?;
    let list: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "id": r.get::<_, Uuid>(0),
                "username": r.get::<_, String>(1),
                "joined_at": messages::iso(r.get(2)),
                "online": r.get::<_, bool>(3),
            })
        })
        .collect();
    Ok(Response::json(200, &list))
}
