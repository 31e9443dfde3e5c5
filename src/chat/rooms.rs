//! Rooms and membership (run on worker threads): listing, creating, reading, joining
//! and leaving, members, and the system entries that record membership changes in the
//! room's stream. Each operation reads the caller's [`Standing`] and asks the access
//! rule ([`access::check`]) before it changes anything.

use crate::base::access::{self, Action, Membership, RoomSettings};
use crate::base::error::{ApiError, ROOM_NOT_FOUND, USER_NOT_FOUND, check, invalid};
use crate::base::model::{Identity, Kind, iso};
pub use crate::base::model::{Role, Visibility};
use crate::base::names;
use crate::chat::ownership;
use crate::pg::is_unique_violation;
use crate::pg::messages;
use crate::pg::notify::{self, Event};
use crate::pg::outbox;
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
         r.retention_days, r.first_seq, r.members_can_pin, r.slow_mode_secs"
    };
}
pub(crate) use room_columns;

/// How many columns [`room_columns!`] names.
pub const ROOM_COLUMNS: usize = 10;

/// Public rooms and the private rooms the caller belongs to, newest first.
const LIST_SQL: &str = concat!(
    "SELECT ",
    room_columns!(),
    " FROM rooms r WHERE r.visibility = 'public'
         OR (r.visibility = 'private'
             AND EXISTS (SELECT 1 FROM room_members m WHERE m.room_id = r.id AND m.user_id = $1))
     ORDER BY r.created_at DESC, r.id DESC LIMIT 1000"
);
const CREATE_SQL: &str =
    "INSERT INTO rooms (id, name, description, created_by, visibility, name_key)
     VALUES ($1, $2, $3, $4, $5, $6)";

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
    /// Any member (not only the owner and admins) may pin and unpin messages.
    pub members_can_pin: bool,
    /// Seconds a member waits between two messages (0: no slow mode; owners and admins
    /// are not held).
    pub slow_mode_secs: i32,
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
            members_can_pin: row.get(8),
            slow_mode_secs: row.get(9),
        }
    }
}

/// Removes a membership, keeping what the member set for itself (`room_departures`);
/// returns the role it had.
const REMOVE_MEMBER_SQL: &str = "WITH gone AS (
       DELETE FROM room_members WHERE room_id = $1 AND user_id = $2
       RETURNING room_id, user_id, role, notifications_muted, last_read_seq, notification_level),
     kept AS (
       INSERT INTO room_departures (room_id, user_id, notifications_muted, last_read_seq,
                                    notification_level)
       SELECT room_id, user_id, notifications_muted, last_read_seq, notification_level FROM gone
       ON CONFLICT (room_id, user_id) DO UPDATE
         SET notifications_muted = EXCLUDED.notifications_muted,
             notification_level = EXCLUDED.notification_level,
             last_read_seq = EXCLUDED.last_read_seq, left_at = now())
     SELECT role FROM gone";

/// Makes `$2` a member of `$1` (nothing when it is one), with the notification mute,
/// level and read position it left with, if it left before.
pub const ADD_MEMBER_SQL: &str = "WITH d AS (
       DELETE FROM room_departures WHERE room_id = $1 AND user_id = $2
       RETURNING notifications_muted, last_read_seq, notification_level)
     INSERT INTO room_members (room_id, user_id, notifications_muted, last_read_seq,
                               notification_level)
     SELECT $1, $2, COALESCE((SELECT notifications_muted FROM d), false),
            COALESCE((SELECT last_read_seq FROM d), 0), (SELECT notification_level FROM d)
     ON CONFLICT DO NOTHING";

/// A new room's fields.
pub struct NewRoom {
    /// Name (trimmed before use).
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// `public` (default) or `private`.
    pub visibility: Option<String>,
}

/// Checks a room name (the rules of every name, `base::names`); returns it as stored
/// and its key, unique among public rooms: names that look alike are one name.
pub fn check_name(name: &str) -> Result<(String, String), String> {
    let name = names::normalise(name, "name", 1..=100)?;
    let key = names::look_alike_key(&name);
    Ok((name, key))
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
    /// The user's display name, if any.
    pub display_name: Option<String>,
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
#[derive(Clone, Copy, Debug)]
pub struct Standing {
    /// What the rules know of the room.
    pub room: RoomSettings,
    /// The caller's membership, invitation or ban. An invitation counts only while its
    /// inviter may still invite (an admin or the owner of the room now): one by an
    /// inviter since demoted, banned or gone lets nobody in.
    pub membership: Membership,
}

impl Standing {
    /// Reads the caller's standing, locking the room, and asks the access rule whether it
    /// may do `action` (a use case with a target asks again with it, [`Standing::allows`]);
    /// `room_not_found` when there is no such room.
    pub fn lock(
        c: &mut impl GenericClient,
        room: Uuid,
        user: Uuid,
        action: Action,
    ) -> Result<Standing, ApiError> {
        let row = c.query_opt(
            "SELECT r.visibility, m.role, x.muted,
                    EXISTS (SELECT 1 FROM room_invites i
                            JOIN room_members im ON im.room_id = i.room_id
                             AND im.user_id = i.invited_by AND im.role <> 'member'
                            WHERE i.room_id = r.id AND i.user_id = $2),
                    COALESCE(x.banned, false)
             FROM rooms r LEFT JOIN room_members m ON m.room_id = r.id AND m.user_id = $2
             LEFT JOIN room_restrictions x ON x.room_id = r.id AND x.user_id = $2
             WHERE r.id = $1 FOR UPDATE OF r",
            &[&room, &user],
        )?;
        let Some(row) = row else {
            return Err(ROOM_NOT_FOUND);
        };
        let s = Standing {
            room: RoomSettings::from_row(row.get(0)),
            membership: Membership::from_row(row.get(1), row.get(2), row.get(3), row.get(4)),
        };
        s.allows(action)?;
        Ok(s)
    }

    /// Whether the caller may do `action` here ([`access::check`]).
    pub fn allows(&self, action: Action) -> Result<(), ApiError> {
        access::check(self.membership, self.room, action)
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
        "slow_mode" => format!("{} changed the room's slow mode", actor.username),
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

/// How many of `$1`'s rows of the last hour a per-user hourly limit counts (at most `$2`
/// of the newest), and the seconds until the oldest of those leaves the hour: rooms
/// created (not direct rooms).
const ROOMS_THIS_HOUR_SQL: &str = "SELECT count(*), COALESCE(
         ceil(EXTRACT(EPOCH FROM min(created_at) + interval '1 hour' - now()))::int8, 1)
     FROM (SELECT created_at FROM rooms
           WHERE created_by = $1 AND visibility <> 'direct'
             AND created_at > now() - interval '1 hour'
           ORDER BY created_at DESC LIMIT $2) x";
/// The same for invitations sent.
pub const INVITES_THIS_HOUR_SQL: &str = "SELECT count(*), COALESCE(
         ceil(EXTRACT(EPOCH FROM min(created_at) + interval '1 hour' - now()))::int8, 1)
     FROM (SELECT created_at FROM room_invites
           WHERE invited_by = $1 AND created_at > now() - interval '1 hour'
           ORDER BY created_at DESC LIMIT $2) x";

/// Refuses with 429 (and when to retry) once `user` has `per_hour` rows counted by
/// `sql` in the last hour (0 = unlimited). Counted in the database, so the limit holds
/// across nodes; concurrent requests of one user may pass it by a few.
pub fn hourly_limit(
    c: &mut impl GenericClient,
    sql: &str,
    user: Uuid,
    per_hour: u32,
) -> Result<(), ApiError> {
    if per_hour == 0 {
        return Ok(());
    }
    let row = c.query_one(sql, &[&user, &i64::from(per_hour)])?;
    let (n, wait): (i64, i64) = (row.get(0), row.get(1));
    if n >= i64::from(per_hour) {
        return Err(ApiError::RateLimited(wait.clamp(1, 3600) as u64));
    }
    Ok(())
}

/// Creates a room; the creator becomes its owner. At most `per_hour` per user (0 =
/// unlimited).
pub fn create(
    w: &mut Worker,
    who: &Identity,
    new: NewRoom,
    per_hour: u32,
) -> Result<Room, ApiError> {
    let c = w.client()?;
    hourly_limit(c, ROOMS_THIS_HOUR_SQL, who.user_id, per_hour)?;
    let mut tx = c.transaction()?;
    let room = insert(&mut tx, who, new)?;
    tx.commit()?;
    Ok(room)
}

/// Does what [`create`] does inside the caller's transaction, `who` the owner (no
/// hourly limit: the server API's rooms are the product's).
pub(crate) fn insert(
    tx: &mut impl GenericClient,
    who: &Identity,
    new: NewRoom,
) -> Result<Room, ApiError> {
    check(new.problems())?;
    let (name, key) = check_name(&new.name).map_err(|e| ApiError::Validation(vec![e]))?;
    let visibility = new.visibility.as_deref().unwrap_or("public");
    let id = Uuid::now_v7();
    match tx.execute(
        CREATE_SQL,
        &[
            &id,
            &name,
            &new.description,
            &who.user_id,
            &visibility,
            &key,
        ],
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
    let room = get_locked(tx, id)?;
    let data = serde_json::to_value(&room).unwrap_or_default();
    outbox::record(tx, "room.created", Some(id), &data)?;
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
    Standing::lock(&mut tx, room, who.user_id, Action::See)?;
    get_locked(&mut tx, room)
}

/// Joins a room (idempotent): any public room, a private room the caller is invited
/// to, never a direct room; banned users cannot (the access rule's `Join`). A new member
/// is recorded in the stream.
pub fn join(w: &mut Worker, who: &Identity, room: Uuid) -> Result<(), ApiError> {
    let c = w.client()?;
    let mut tx = c.transaction()?;
    let s = Standing::lock(&mut tx, room, who.user_id, Action::Join)?;
    if s.membership.role().is_some() {
        return Ok(());
    }
    add_member(&mut tx, who, room)?;
    tx.commit()?;
    Ok(())
}

/// Does what [`join`] allowed for a user not yet a member: the membership (its
/// invitation used up) and the stream's record of it.
pub(crate) fn add_member(
    tx: &mut impl GenericClient,
    who: &Identity,
    room: Uuid,
) -> Result<(), ApiError> {
    tx.execute(ADD_MEMBER_SQL, &[&room, &who.user_id])?;
    tx.execute(
        "DELETE FROM room_invites WHERE room_id = $1 AND user_id = $2",
        &[&room, &who.user_id],
    )?;
    system(tx, room, who, "joined", None, json!({}))
}

/// Removes `user` from `room` inside the caller's transaction: the membership, its live
/// sockets on every node (told `reason`), and the stream's record of it; what the user
/// had set for itself is kept for its return. An owner who leaves hands the room on, and
/// the last member who leaves deletes it (`ownership::after_leaving`).
pub fn remove_member(
    tx: &mut impl GenericClient,
    room: Uuid,
    actor: &Identity,
    user: (Uuid, &str),
    reason: &str,
) -> Result<bool, ApiError> {
    let gone = tx.query_opt(REMOVE_MEMBER_SQL, &[&room, &user.0])?;
    let Some(gone) = gone else {
        return Ok(false);
    };
    notify::publish(
        tx,
        &[Event::Kick {
            room,
            user: user.0,
            reason: Some(reason.to_string()),
        }],
    )?;
    if let ownership::After::Deleted = ownership::after_leaving(tx, room, actor, gone.get(0))? {
        // Every socket in it was told the room is gone.
        return Ok(true);
    }
    let target = (user.0 != actor.user_id).then_some(user);
    system(tx, room, actor, reason, target, json!({}))?;
    Ok(true)
}

/// Leaves a room; live delivery to the user's sockets in the room stops too.
pub fn leave(w: &mut Worker, who: &Identity, room: Uuid) -> Result<(), ApiError> {
    let c = w.client()?;
    let mut tx = c.transaction()?;
    // Leaving a room one is not in changes nothing; one the caller cannot see is
    // `room_not_found`, as if it did not exist.
    Standing::lock(&mut tx, room, who.user_id, Action::Leave)?;
    remove_member(&mut tx, room, who, (who.user_id, &who.username), "left")?;
    tx.commit()?;
    Ok(())
}

/// Fails unless `user` may do `action` in `room` (an action on the room's stream: one
/// statement, no lock, and neither invitations nor bans read, which no such rule looks
/// at).
pub fn require(
    c: &mut impl GenericClient,
    room: Uuid,
    user: Uuid,
    action: Action,
) -> Result<(), ApiError> {
    let row = c.query_opt(
        "SELECT r.visibility, m.role, x.muted
         FROM rooms r LEFT JOIN room_members m ON m.room_id = r.id AND m.user_id = $2
         LEFT JOIN room_restrictions x ON x.room_id = r.id AND x.user_id = $2
         WHERE r.id = $1",
        &[&room, &user],
    )?;
    let Some(row) = row else {
        return Err(ROOM_NOT_FOUND);
    };
    let m = Membership::from_row(row.get(1), row.get(2), false, false);
    access::check(m, RoomSettings::from_row(row.get(0)), action)
}

/// A user's id and name, or `user_not_found`.
pub fn user(c: &mut impl GenericClient, id: Uuid) -> Result<(Uuid, String), ApiError> {
    match c.query_opt("SELECT id, username FROM users WHERE id = $1", &[&id])? {
        Some(r) => Ok((r.get(0), r.get(1))),
        None => Err(USER_NOT_FOUND),
    }
}

/// Another user as a use case acts on them: id, name and standing in `room` (one
/// statement), or `user_not_found`.
pub fn user_in(
    c: &mut impl GenericClient,
    room: Uuid,
    id: Uuid,
) -> Result<(Uuid, String, Membership), ApiError> {
    let row = c.query_opt(
        "SELECT u.id, u.username, m.role, x.muted,
                EXISTS (SELECT 1 FROM room_invites i
                        JOIN room_members im ON im.room_id = i.room_id
                         AND im.user_id = i.invited_by AND im.role <> 'member'
                        WHERE i.room_id = $1 AND i.user_id = u.id),
                COALESCE(x.banned, false)
         FROM users u LEFT JOIN room_members m ON m.room_id = $1 AND m.user_id = u.id
         LEFT JOIN room_restrictions x ON x.room_id = $1 AND x.user_id = u.id
         WHERE u.id = $2",
        &[&room, &id],
    )?;
    let Some(r) = row else {
        return Err(USER_NOT_FOUND);
    };
    let m = Membership::from_row(r.get(2), r.get(3), r.get(4), r.get(5));
    Ok((r.get(0), r.get(1), m))
}

/// A room's members, each with its role, mute state and an `online` flag.
pub fn members(w: &mut Worker, who: &Identity, room: Uuid) -> Result<Vec<Member>, ApiError> {
    let c = w.client()?;
    require(c, room, who.user_id, Action::Members)?;
    let rows = c.query(
        "SELECT u.id, u.username, m.joined_at,
                EXISTS (SELECT 1 FROM presence p WHERE p.room_id = m.room_id AND p.user_id = u.id),
                m.role, COALESCE(x.muted, false), u.display_name
         FROM room_members m JOIN users u ON u.id = m.user_id
         LEFT JOIN room_restrictions x ON x.room_id = m.room_id AND x.user_id = m.user_id
         WHERE m.room_id = $1 ORDER BY m.joined_at, u.id LIMIT 10000",
        &[&room],
    )?;
    Ok(rows
        .iter()
        .map(|r| Member {
            id: r.get(0),
            username: r.get(1),
            display_name: r.get(6),
            joined_at: iso(r.get(2)),
            online: r.get(3),
            role: Role::parse(r.get(4)).unwrap_or(Role::Member),
            muted: r.get(5),
        })
        .collect())
}

/// Refuses to act on oneself where it makes no sense.
pub fn not_self(who: &Identity, target: Uuid, what: &str) -> Result<(), ApiError> {
    if who.user_id == target {
        return Err(invalid(&format!("you cannot {what} yourself")));
    }
    Ok(())
}
