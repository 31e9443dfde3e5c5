//! Rooms and membership (run on worker threads): listing, creating, reading, joining
//! and leaving, members, and the system entries that record membership changes in the
//! room's stream.

use crate::base::error::{
    ApiError, BANNED, NOT_MEMBER, ROOM_NOT_FOUND, USER_NOT_FOUND, check, invalid,
};
use crate::base::model::{Identity, Kind, iso};
use crate::pg::is_unique_violation;
use crate::pg::messages;
use crate::pg::notify::{self, Event};
use crate::pg::pool::Worker;
use chrono::{DateTime, Utc};
use postgres::GenericClient;
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

/// Columns of `rooms` in the order [`Room::from_row`] reads them.
macro_rules! room_columns {
    () => {
        "r.id, r.name, r.description, r.created_by, r.created_at, r.visibility, \
         r.retention_days, r.first_seq"
    };
}
pub(crate) use room_columns;

/// How many columns [`room_columns!`] names.
pub const ROOM_COLUMNS: usize = 8;

/// Public rooms and the private rooms the caller belongs to, newest first.
const LIST_SQL: &str = concat!(
    "SELECT ",
    room_columns!(),
    " FROM rooms r WHERE r.visibility = 'public'
         OR (r.visibility = 'private'
             AND EXISTS (SELECT 1 FROM room_members m WHERE m.room_id = r.id AND m.user_id = $1))
     ORDER BY r.created_at DESC, r.id DESC LIMIT 1000"
);
const CREATE_SQL: &str = "INSERT INTO rooms (id, name, description, created_by, visibility)
     VALUES ($1, $2, $3, $4, $5)";

/// Who may see a room: anyone when public; members (and, for a private room, invited
/// users) otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Listed and joinable by anyone.
    Public,
    /// Listed and readable by members only; joined by invitation.
    Private,
    /// A conversation of exactly two users.
    Direct,
}

impl Visibility {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Private => "private",
            Visibility::Direct => "direct",
        }
    }

    /// Parses a stored or requested name.
    pub fn parse(s: &str) -> Option<Visibility> {
        match s {
            "public" => Some(Visibility::Public),
            "private" => Some(Visibility::Private),
            "direct" => Some(Visibility::Direct),
            _ => None,
        }
    }
}

/// A member's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A member.
    Member,
    /// May invite, kick, ban, mute, and change the room.
    Admin,
    /// The creator: an admin who may also promote, demote and delete.
    Owner,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    /// Parses a stored or requested name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "member" => Some(Role::Member),
            "admin" => Some(Role::Admin),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }
}

/// A room as clients see it.
#[derive(Debug, Serialize)]
pub struct Room {
    /// Room id.
    pub id: Uuid,
    /// Name (unique among public rooms).
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Creator (null once the account is gone).
    pub created_by: Option<Uuid>,
    /// Creation time.
    pub created_at: String,
    /// Who may see it.
    pub visibility: Visibility,
    /// Days its messages are kept: null follows the server's `retention.max_age_days`,
    /// 0 keeps them forever.
    pub retention_days: Option<i32>,
    /// The oldest seq still stored: older messages were removed by retention.
    pub first_seq: i64,
}

impl Room {
    /// Reads a row selected with [`room_columns!`].
    pub fn from_row(row: &postgres::Row) -> Room {
        let created: DateTime<Utc> = row.get(4);
        Room {
            id: row.get(0),
            name: row.get(1),
            description: row.get(2),
            created_by: row.get(3),
            created_at: iso(created),
            visibility: Visibility::parse(row.get(5)).unwrap_or(Visibility::Public),
            retention_days: row.get(6),
            first_seq: row.get(7),
        }
    }
}

/// A new room's fields.
pub struct NewRoom {
    /// Name (trimmed before use).
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// `public` (default) or `private`.
    pub visibility: Option<String>,
}

/// Checks a room name; returns it trimmed.
pub fn check_name(name: &str) -> Result<String, String> {
    let n = name.trim();
    if !(1..=100).contains(&n.chars().count()) {
        return Err("name must be 1 to 100 characters".into());
    }
    Ok(n.to_string())
}

/// Checks a description.
pub fn check_description(d: &Option<String>) -> Result<(), String> {
    if d.as_ref().is_some_and(|d| d.chars().count() > 1000) {
        return Err("description must be at most 1000 characters".into());
    }
    Ok(())
}

impl NewRoom {
    /// Every rule the request breaks, one line each.
    pub fn problems(&self) -> Vec<String> {
        let mut errs = Vec::new();
        if let Err(e) = check_name(&self.name) {
            errs.push(e);
        }
        if let Err(e) = check_description(&self.description) {
            errs.push(e);
        }
        match self.visibility.as_deref().map(Visibility::parse) {
            None | Some(Some(Visibility::Public | Visibility::Private)) => {}
            _ => errs.push(
                "visibility must be public or private (direct rooms come from POST /dm)".into(),
            ),
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
    /// Role in the room.
    pub role: Role,
    /// Muted: reads but cannot send.
    pub muted: bool,
}

/// The caller's standing in a room, read with the room row locked (moderation and
/// membership changes of one room are serialised with each other and with its writer).
pub struct Standing {
    /// Who may see the room.
    pub visibility: Visibility,
    /// The caller's role, when a member.
    pub role: Option<Role>,
    /// The caller is invited (private rooms).
    pub invited: bool,
    /// The caller is banned.
    pub banned: bool,
}

impl Standing {
    /// Reads the caller's standing, locking the room; `room_not_found` when there is no
    /// such room or the caller may not see it.
    pub fn lock(c: &mut impl GenericClient, room: Uuid, user: Uuid) -> Result<Standing, ApiError> {
        let row = c.query_opt(
            "SELECT r.visibility, m.role,
                    EXISTS (SELECT 1 FROM room_invites i WHERE i.room_id = r.id AND i.user_id = $2),
                    EXISTS (SELECT 1 FROM room_bans b WHERE b.room_id = r.id AND b.user_id = $2)
             FROM rooms r LEFT JOIN room_members m ON m.room_id = r.id AND m.user_id = $2
             WHERE r.id = $1 FOR UPDATE OF r",
            &[&room, &user],
        )?;
        let Some(row) = row else {
            return Err(ROOM_NOT_FOUND);
        };
        let s = Standing {
            visibility: Visibility::parse(row.get(0)).unwrap_or(Visibility::Public),
            role: row.get::<_, Option<&str>>(1).and_then(Role::parse),
            invited: row.get(2),
            banned: row.get(3),
        };
        if s.role.is_none() && s.visibility != Visibility::Public && !s.invited {
            return Err(ROOM_NOT_FOUND);
        }
        Ok(s)
    }

    /// The caller's role; `not_member` when it has none.
    pub fn member(&self) -> Result<Role, ApiError> {
        self.role.ok_or(NOT_MEMBER)
    }
}

/// Records a membership change or a room setting as a system entry of the room's
/// stream (a seq of its own, delivered like a message). `what` names the change;
/// `target` is the user it concerns, when not the actor.
pub fn system(
    c: &mut impl GenericClient,
    room: Uuid,
    actor: &Identity,
    what: &str,
    target: Option<(Uuid, &str)>,
    extra: serde_json::Value,
) -> Result<(), ApiError> {
    let (user_id, username) = target.unwrap_or((actor.user_id, &actor.username));
    let mut data = json!({
        "type": what,
        "user_id": user_id,
        "username": username,
        "by": actor.user_id,
    });
    if let (Some(d), serde_json::Value::Object(e)) = (data.as_object_mut(), extra) {
        d.extend(e);
    }
    let text = match what {
        "joined" => format!("{username} joined"),
        "left" => format!("{username} left"),
        "kicked" => format!("{username} was removed by {}", actor.username),
        "banned" => format!("{username} was banned by {}", actor.username),
        "renamed" => format!("{} renamed the room", actor.username),
        "visibility" => format!("{} changed who can see the room", actor.username),
        "retention" => format!("{} changed how long messages are kept", actor.username),
        other => other.to_string(),
    };
    messages::append(
        c,
        room,
        actor.user_id,
        &actor.username,
        &text,
        Kind::System,
        Some(&data),
    )?;
    Ok(())
}

/// The room list of a user: public rooms and the private rooms it belongs to.
pub fn list(w: &mut Worker, who: &Identity) -> Result<Vec<Room>, ApiError> {
    let rows = w.client()?.query(LIST_SQL, &[&who.user_id])?;
    Ok(rows.iter().map(Room::from_row).collect())
}

/// Creates a room; the creator becomes its owner.
pub fn create(w: &mut Worker, who: &Identity, new: NewRoom) -> Result<Room, ApiError> {
    check(new.problems())?;
    let name = check_name(&new.name).map_err(|e| ApiError::Validation(vec![e]))?;
    let visibility = new.visibility.as_deref().unwrap_or("public");
    let c = w.client()?;
    let mut tx = c.transaction()?;
    let id = Uuid::now_v7();
    match tx.execute(
        CREATE_SQL,
        &[&id, &name, &new.description, &who.user_id, &visibility],
    ) {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e, "rooms_public_name_key") => {
            return Err(ApiError::Conflict(
                "room_name_taken",
                "Room name already taken",
            ));
        }
        Err(e) => return Err(e.into()),
    }
    tx.execute(
        "INSERT INTO room_members (room_id, user_id, role) VALUES ($1, $2, 'owner')",
        &[&id, &who.user_id],
    )?;
    let room = get_locked(&mut tx, id)?;
    tx.commit()?;
    Ok(room)
}

/// A room read inside the caller's transaction (after [`Standing::lock`]).
pub fn get_locked(c: &mut impl GenericClient, room: Uuid) -> Result<Room, ApiError> {
    let sql = concat!("SELECT ", room_columns!(), " FROM rooms r WHERE r.id = $1");
    match c.query_opt(sql, &[&room])? {
        Some(row) => Ok(Room::from_row(&row)),
        None => Err(ROOM_NOT_FOUND),
    }
}

/// One room, if the caller may see it.
pub fn get(w: &mut Worker, who: &Identity, room: Uuid) -> Result<Room, ApiError> {
    let c = w.client()?;
    let mut tx = c.transaction()?;
    Standing::lock(&mut tx, room, who.user_id)?;
    get_locked(&mut tx, room)
}

/// Joins a room (idempotent): any public room, a private room the caller is invited
/// to, never a direct room; banned users cannot. A new member is recorded in the stream.
pub fn join(w: &mut Worker, who: &Identity, room: Uuid) -> Result<(), ApiError> {
    let c = w.client()?;
    let mut tx = c.transaction()?;
    let s = Standing::lock(&mut tx, room, who.user_id)?;
    if s.role.is_some() {
        return Ok(());
    }
    if s.banned {
        return Err(BANNED);
    }
    if s.visibility == Visibility::Direct {
        return Err(ROOM_NOT_FOUND);
    }
    tx.execute(
        "INSERT INTO room_members (room_id, user_id) VALUES ($1, $2)",
        &[&room, &who.user_id],
    )?;
    tx.execute(
        "DELETE FROM room_invites WHERE room_id = $1 AND user_id = $2",
        &[&room, &who.user_id],
    )?;
    system(&mut tx, room, who, "joined", None, json!({}))?;
    tx.commit()?;
    Ok(())
}

/// Removes `user` from `room` inside the caller's transaction: the membership, its live
/// sockets on every node (told `reason`), and the stream's record of it. An owner who
/// leaves hands the room to its oldest admin, else its oldest member.
pub fn remove_member(
    tx: &mut impl GenericClient,
    room: Uuid,
    actor: &Identity,
    user: (Uuid, &str),
    reason: &str,
) -> Result<bool, ApiError> {
    let gone = tx.query_opt(
        "DELETE FROM room_members WHERE room_id = $1 AND user_id = $2 RETURNING role",
        &[&room, &user.0],
    )?;
    let Some(gone) = gone else {
        return Ok(false);
    };
    if gone.get::<_, &str>(0) == "owner" {
        tx.execute(
            "UPDATE room_members SET role = 'owner' WHERE (room_id, user_id) =
               (SELECT room_id, user_id FROM room_members WHERE room_id = $1
                ORDER BY role = 'admin' DESC, joined_at, user_id LIMIT 1)",
            &[&room],
        )?;
    }
    notify::publish(
        tx,
        &[Event::Kick {
            room,
            user: user.0,
            reason: Some(reason.to_string()),
        }],
    )?;
    let target = (user.0 != actor.user_id).then_some(user);
    system(tx, room, actor, reason, target, json!({}))?;
    Ok(true)
}

/// Leaves a room; live delivery to the user's sockets in the room stops too.
pub fn leave(w: &mut Worker, who: &Identity, room: Uuid) -> Result<(), ApiError> {
    let c = w.client()?;
    let mut tx = c.transaction()?;
    // A room the caller cannot see is `room_not_found`, as if it did not exist.
    Standing::lock(&mut tx, room, who.user_id)?;
    remove_member(&mut tx, room, who, (who.user_id, &who.username), "left")?;
    tx.commit()?;
    Ok(())
}

/// Fails unless the room exists, the user may see it, and is a member.
pub fn require_member(c: &mut impl GenericClient, room: Uuid, user: Uuid) -> Result<(), ApiError> {
    let row = c.query_opt(
        "SELECT r.visibility = 'public',
                EXISTS (SELECT 1 FROM room_members WHERE room_id = r.id AND user_id = $2)
         FROM rooms r WHERE r.id = $1",
        &[&room, &user],
    )?;
    match row.map(|r| (r.get::<_, bool>(0), r.get::<_, bool>(1))) {
        Some((_, true)) => Ok(()),
        Some((true, false)) => Err(NOT_MEMBER),
        _ => Err(ROOM_NOT_FOUND),
    }
}

/// A user's id and name, or `user_not_found`.
pub fn user(c: &mut impl GenericClient, id: Uuid) -> Result<(Uuid, String), ApiError> {
    match c.query_opt("SELECT id, username FROM users WHERE id = $1", &[&id])? {
        Some(r) => Ok((r.get(0), r.get(1))),
        None => Err(USER_NOT_FOUND),
    }
}

/// A room's members, each with its role, mute state and an `online` flag.
pub fn members(w: &mut Worker, who: &Identity, room: Uuid) -> Result<Vec<Member>, ApiError> {
    let c = w.client()?;
    require_member(c, room, who.user_id)?;
    let rows = c.query(
        "SELECT u.id, u.username, m.joined_at,
                EXISTS (SELECT 1 FROM presence p WHERE p.room_id = m.room_id AND p.user_id = u.id),
                m.role, m.muted
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
            role: Role::parse(r.get(4)).unwrap_or(Role::Member),
            muted: r.get(5),
        })
        .collect())
}

/// Silences (or not) a room's notifications for the caller; any member may.
pub fn set_notifications(
    w: &mut Worker,
    who: &Identity,
    room: Uuid,
    muted: bool,
) -> Result<(), ApiError> {
    let c = w.client()?;
    let mut tx = c.transaction()?;
    Standing::lock(&mut tx, room, who.user_id)?.member()?;
    tx.execute(
        "UPDATE room_members SET notifications_muted = $3 WHERE room_id = $1 AND user_id = $2",
        &[&room, &who.user_id, &muted],
    )?;
    tx.commit()?;
    Ok(())
}

/// Refuses to act on oneself where it makes no sense.
pub fn not_self(who: &Identity, target: Uuid, what: &str) -> Result<(), ApiError> {
    if who.user_id == target {
        return Err(invalid(&format!("you cannot {what} yourself")));
    }
    Ok(())
}
