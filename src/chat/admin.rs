//! Rooms as the product's backend manages them through the server API (run on worker
//! threads): a room created with its owner and members, members added and removed, and
//! system entries. Each does what the user-facing use case does (the same do steps of
//! `rooms.rs`, the same stream entries and events on every node), with an API key as
//! the actor instead of a member's standing: the key holds the server's authority, so no
//! room permission is asked; the room's own rules (a direct room's pair, bans) still
//! hold. Every action writes its audit row in its transaction. The audit log is read
//! here too.

use crate::base::error::{ApiError, ROOM_NOT_FOUND, invalid};
use crate::base::model::{Identity, Kind, Message, Role};
use crate::chat::rooms::{self, NewRoom, Room};
use crate::pg::audit::{self, Actor};
use crate::pg::messages::{self, Entry, message_columns};
use crate::pg::pool::Worker;
use postgres::GenericClient;
use serde_json::json;
use uuid::Uuid;

/// The actor as the stream records it: an API key has no account, so its entries carry
/// the nil user id and the key's name.
pub fn as_identity(actor: &Actor) -> Identity {
    Identity {
        user_id: Uuid::nil(),
        username: actor.name.clone(),
        session_id: Uuid::nil(),
    }
}

/// Locks a room's row and returns its visibility (`room_not_found` when there is none).
fn lock_room(c: &mut impl GenericClient, room: Uuid) -> Result<String, ApiError> {
    c.query_opt(
        "SELECT visibility FROM rooms WHERE id = $1 FOR UPDATE",
        &[&room],
    )?
    .map(|r| r.get(0))
    .ok_or(ROOM_NOT_FOUND)
}

/// An account as the stream names it (`user_not_found` when there is none).
fn identity_of(c: &mut impl GenericClient, user: Uuid) -> Result<Identity, ApiError> {
    let (user_id, username) = rooms::user(c, user)?;
    Ok(Identity {
        user_id,
        username,
        session_id: Uuid::nil(),
    })
}

/// `POST /admin/rooms`: a room owned by `owner`, with `members` joined (each a
/// `joined` entry of its stream).
pub fn create_room(
    w: &mut Worker,
    actor: &Actor,
    owner: Uuid,
    new: NewRoom,
    members: Vec<Uuid>,
) -> Result<Room, ApiError> {
    if members.len() > 1000 {
        return Err(invalid("member_ids holds at most 1000 users"));
    }
    let c = w.client()?;
    let mut tx = c.transaction()?;
    let owner = identity_of(&mut tx, owner)?;
    let room = rooms::insert(&mut tx, &owner, new)?;
    let mut added = Vec::new();
    for m in members {
        if m == owner.user_id || added.contains(&m) {
            continue;
        }
        let who = identity_of(&mut tx, m)?;
        rooms::add_member(&mut tx, &who, room.id)?;
        added.push(m);
    }
    audit::record(
        &mut tx,
        actor,
        "room.create",
        Some(room.id),
        Some(owner.user_id),
        json!({"name": room.name, "member_ids": added}),
    )?;
    tx.commit()?;
    Ok(room)
}

/// `POST /admin/rooms/:id/members`: makes `user` a member with `role` (a new member is
/// a `joined` entry of the stream; an existing one gets the role). Not in a direct room,
/// not a user banned from the room; the owner's role does not change here.
pub fn add_member(
    w: &mut Worker,
    actor: &Actor,
    room: Uuid,
    user: Uuid,
    role: Role,
) -> Result<(), ApiError> {
    if role == Role::Owner {
        return Err(invalid("role must be admin or member"));
    }
    let c = w.client()?;
    let mut tx = c.transaction()?;
    if lock_room(&mut tx, room)? == "direct" {
        return Err(invalid("a direct room's members do not change"));
    }
    let (_, _, standing) = rooms::user_in(&mut tx, room, user)?;
    if matches!(standing, crate::base::access::Membership::Banned) {
        return Err(ApiError::Conflict(
            "banned",
            "The user is banned from this room (unban first)",
        ));
    }
    match standing.role() {
        Some(Role::Owner) => return Err(invalid("the owner's role cannot change")),
        Some(_) => {}
        None => {
            let who = identity_of(&mut tx, user)?;
            rooms::add_member(&mut tx, &who, room)?
        }
    }
    tx.execute(
        "UPDATE room_members SET role = $3 WHERE room_id = $1 AND user_id = $2 AND role <> $3",
        &[&room, &user, &role.as_str()],
    )?;
    audit::record(
        &mut tx,
        actor,
        "room.member_add",
        Some(room),
        Some(user),
        json!({"role": role.as_str()}),
    )?;
    tx.commit()?;
    Ok(())
}

/// `DELETE /admin/rooms/:id/members/:user_id`: removes a member as a kick does (its
/// sockets in the room on every node leave it; a `kicked` entry); an owner removed hands
/// the room on as when it leaves.
pub fn remove_member(
    w: &mut Worker,
    actor: &Actor,
    room: Uuid,
    user: Uuid,
) -> Result<(), ApiError> {
    let c = w.client()?;
    let mut tx = c.transaction()?;
    if lock_room(&mut tx, room)? == "direct" {
        return Err(invalid("a direct room's members do not change"));
    }
    let target = identity_of(&mut tx, user)?;
    let by = as_identity(actor);
    let removed = rooms::remove_member(
        &mut tx,
        room,
        &by,
        (target.user_id, &target.username),
        "kicked",
    )?;
    if !removed {
        return Err(ApiError::NotFound(
            "member_not_found",
            "The user is not a member of this room",
        ));
    }
    audit::record(
        &mut tx,
        actor,
        "room.member_remove",
        Some(room),
        Some(user),
        json!({}),
    )?;
    tx.commit()?;
    Ok(())
}

/// `POST /admin/rooms/:id/messages` without `user_id`: a system entry of kind `system`
/// (`data.type` = `notice`) carrying `content`, by the key. A retried `client_msg_id`
/// answers the entry stored the first time (`false`: nothing new).
pub fn post_notice(
    w: &mut Worker,
    actor: &Actor,
    room: Uuid,
    content: &str,
    client_msg_id: Option<&str>,
) -> Result<(Message, bool), ApiError> {
    let c = w.client()?;
    let mut tx = c.transaction()?;
    lock_room(&mut tx, room)?;
    let by = as_identity(actor);
    if let Some(key) = client_msg_id {
        let sql = concat!(
            "SELECT ",
            message_columns!(),
            " FROM messages WHERE room_id = $1 AND user_id = $2 AND client_msg_id = $3"
        );
        if let Some(row) = tx.query_opt(sql, &[&room, &by.user_id, &key])? {
            return Ok((messages::from_row(&row)?, false));
        }
    }
    let data = json!({"type": "notice", "by": by.user_id, "api_key": actor.name});
    let m = messages::append_entry(
        &mut tx,
        &Entry {
            room,
            user: by.user_id,
            username: &by.username,
            content,
            kind: Kind::System,
            data: Some(&data),
            target: None,
            client_msg_id,
        },
    )?;
    audit::record(
        &mut tx,
        actor,
        "room.notice",
        Some(room),
        None,
        json!({"seq": m.seq}),
    )?;
    tx.commit()?;
    Ok((m, true))
}

/// The author of `POST /admin/rooms/:id/messages {user_id}` (`user_not_found` when
/// there is none); the message then goes through the room's writer like any send.
pub fn author(w: &mut Worker, user: Uuid) -> Result<Identity, ApiError> {
    identity_of(w.client()?, user)
}

/// Records a message posted as `user` once the writer stored it (the writer's batch is
/// its own transaction).
pub fn record_post(w: &mut Worker, actor: &Actor, m: &Message) -> Result<(), ApiError> {
    audit::record(
        w.client()?,
        actor,
        "room.message",
        Some(m.room_id),
        Some(m.user_id),
        json!({"seq": m.seq}),
    )?;
    Ok(())
}

/// `GET /admin/audit`: up to `limit` rows before the cursor, newest first, and the
/// cursor of the next page (none after the last).
pub fn audit_page(
    w: &mut Worker,
    before: Option<i64>,
    limit: i64,
) -> Result<serde_json::Value, ApiError> {
    let entries = audit::page(w.client()?, before, limit)?;
    let next = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.id.to_string()))
        .flatten();
    Ok(json!({"entries": entries, "next_cursor": next}))
}
