//! Who may see and do what in a room: one pure function from the actor's standing in the
//! room, the room's settings and the action to `Ok(())` or the exact refusal.
//!
//! Every path that touches a room asks [`check`]: the batched writer for each message of
//! a batch, the batched head checks (history pages, WebSocket joins), the read marks,
//! and every use case of the domain. The queries that read a standing differ in what
//! they read (the writer and the batched checks skip invitations and bans, which no
//! rule of theirs looks at); the matrix test in `access/matrix.rs` shows for each action
//! which states answer alike. It lives in base/ so that pg/'s writer and chat/'s use
//! cases ask the same function.
//!
//! Actions on a message or on another member carry what the rule needs to know about
//! that target (`None` while the use case has not read it yet): a use case asks once
//! before it reads the target, so that refusals about the room come first, and again
//! with the target. Knowing the target never lifts a refusal (the matrix test checks it).

use crate::base::error::{
    ApiError, BANNED, BLOCKED, FORBIDDEN, MUTED, NOT_MEMBER, ROOM_NOT_FOUND, invalid,
};
use crate::base::model::{Role, Visibility};

/// A user's standing in one room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Membership {
    /// No relation to the room (a kicked user, or one who left, is here too).
    None,
    /// Invited and not yet joined (private rooms).
    Invited,
    /// A member.
    Member {
        /// Role in the room.
        role: Role,
        /// Muted: reads but cannot send.
        muted: bool,
    },
    /// Banned from the room (never a member at the same time).
    Banned,
}

impl Membership {
    /// The standing stored in a row: a membership's role (`None` without one) and mute,
    /// and whether an invitation or a ban exists. A member is a member whatever else is
    /// stored; a ban outweighs an invitation.
    pub fn from_row(role: Option<&str>, muted: Option<bool>, invited: bool, banned: bool) -> Self {
        match role {
            Some(r) => Membership::Member {
                role: Role::parse(r).unwrap_or(Role::Member),
                muted: muted.unwrap_or(false),
            },
            None if banned => Membership::Banned,
            None if invited => Membership::Invited,
            None => Membership::None,
        }
    }

    /// The role, when a member.
    pub fn role(self) -> Option<Role> {
        match self {
            Membership::Member { role, .. } => Some(role),
            _ => None,
        }
    }
}

/// What the rules know of a room besides the actor's standing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoomSettings {
    /// Who may see it.
    pub visibility: Visibility,
    /// Any member (not only the owner and admins) may pin and unpin.
    pub members_can_pin: bool,
    /// A direct room whose two members are parted by a block (either way), as the
    /// writer reads it for the sender (`user_blocks`): nobody sends into it.
    pub blocked: bool,
}

impl RoomSettings {
    /// The settings stored in a room's row (a visibility the schema does not know
    /// reads as private: such a room shows itself to no outsider).
    pub fn from_row(visibility: &str) -> Self {
        RoomSettings {
            visibility: Visibility::parse(visibility).unwrap_or(Visibility::Private),
            members_can_pin: false,
            blocked: false,
        }
    }

    /// With a block between the members of a direct room (read only by the writer).
    pub fn with_blocked(self, blocked: bool) -> Self {
        RoomSettings { blocked, ..self }
    }

    /// With the room's `members_can_pin` (read only by the use cases that need it).
    pub fn with_members_can_pin(self, members_can_pin: bool) -> Self {
        RoomSettings {
            members_can_pin,
            ..self
        }
    }
}

/// Whose message an action on a message touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Author {
    /// The actor's own.
    Own,
    /// Someone else's, with their role in the room (`None`: no longer a member).
    Other(Option<Role>),
}

/// What an admin may do to a member (`/rooms/:id/members/:user_id/<sanction>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sanction {
    /// Remove from the room.
    Kick,
    /// Remove and keep out until unbanned.
    Ban,
    /// Let back in.
    Unban,
    /// Read only.
    Mute,
    /// Send again.
    Unmute,
}

impl Sanction {
    /// Parses the last path segment of `/rooms/:id/members/:user_id/<sanction>`.
    pub fn parse(s: &str) -> Option<Sanction> {
        Some(match s {
            "kick" => Sanction::Kick,
            "ban" => Sanction::Ban,
            "unban" => Sanction::Unban,
            "mute" => Sanction::Mute,
            "unmute" => Sanction::Unmute,
            _ => return None,
        })
    }

    /// The verb, as a path segment and in messages.
    pub fn verb(self) -> &'static str {
        match self {
            Sanction::Kick => "kick",
            Sanction::Ban => "ban",
            Sanction::Unban => "unban",
            Sanction::Mute => "mute",
            Sanction::Unmute => "unmute",
        }
    }
}

/// How far a change of a room's settings reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// Name, description, receipts, a longer retention, making a room private.
    Plain,
    /// A change that exposes or destroys the history already written: a public room made
    /// of a private one, a retention shorter than the current one (or not provably
    /// longer). The owner's alone, like deleting the room.
    History,
}

/// Everything a user may ask to do in a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Read the room's description (`GET /rooms/:id`).
    See,
    /// Read history pages.
    ReadHistory,
    /// Join the room's live stream on a socket (`join_room`).
    Subscribe,
    /// List the members.
    Members,
    /// Search the room's messages.
    Search,
    /// Read a thread's replies.
    Thread,
    /// Read a message's earlier versions.
    EditHistory,
    /// Send a message.
    Send,
    /// Edit a message (the author, once known).
    Edit(Option<Author>),
    /// Delete a message (the author, once known).
    Delete(Option<Author>),
    /// React to a message (the author, once known).
    React(Option<Author>),
    /// Take back one's reaction (the author, once known).
    Unreact(Option<Author>),
    /// Show that one is typing.
    Typing,
    /// Move one's read mark.
    MarkRead,
    /// Become a member (`POST /rooms/:id/join`).
    Join,
    /// Stop being a member.
    Leave,
    /// Invite a user (their standing, once known).
    Invite(Option<Membership>),
    /// Kick, ban, unban, mute or unmute a user (their standing, once known).
    Moderate(Sanction, Option<Membership>),
    /// Make a member an admin or a member (their standing, once known).
    SetRole(Option<Membership>),
    /// Lift a ban or a mute set by someone with this role in the room now (`None`: not a
    /// member any more), asked after `Moderate` once the restriction is read.
    Lift(Option<Role>),
    /// Change the room's name, description, visibility, receipts or retention (how far
    /// the change reaches, once compared with the current settings).
    UpdateSettings(Option<Reach>),
    /// Delete the room.
    DeleteRoom,
    /// Silence the room's notifications for oneself.
    SetNotifications,
    /// Pin or unpin a message.
    Pin,
    /// List the pinned messages (as reading history).
    Pins,
    /// Report a message to the room's owner and admins.
    Report,
    /// List and resolve the room's reports.
    ReviewReports,
    /// Upload a file into the room (as sending: a muted member may not).
    Upload,
    /// Download a file of the room (as reading history).
    Download,
}

/// Whether `m` may do `action` in a room with `room`'s settings: `Ok(())`, or the refusal
/// the client gets (`room_not_found` for a room it may not see).
pub fn check(m: Membership, room: RoomSettings, action: Action) -> Result<(), ApiError> {
    let v = room.visibility;
    match action {
        Action::See | Action::Leave => shown(m, v),
        Action::ReadHistory
        | Action::Subscribe
        | Action::Members
        | Action::Search
        | Action::Thread
        | Action::MarkRead
        | Action::Pins
        | Action::Report
        | Action::Download => joined(m, v).map(drop),
        // A muted member neither sends nor shows that it is about to. A block between
        // the two members of a direct room stops both from sending (neither learns who
        // blocked whom); they still read it.
        Action::Send | Action::Typing | Action::Upload => match joined(m, v)? {
            (_, true) => Err(MUTED),
            _ if room.blocked && action == Action::Send => Err(BLOCKED),
            _ => Ok(()),
        },
        Action::EditHistory | Action::SetNotifications => member(m, v).map(drop),
        Action::Edit(author) => {
            let (_, muted) = member(m, v)?;
            match author {
                Some(Author::Other(_)) => Err(FORBIDDEN),
                Some(Author::Own) if muted => Err(MUTED),
                _ => Ok(()),
            }
        }
        // Others' messages: an admin deletes those of members (and of users gone from
        // the room), the owner those of admins too; nobody the owner's.
        Action::Delete(author) => match (member(m, v)?, author) {
            ((Role::Member, _), Some(Author::Other(_))) => Err(FORBIDDEN),
            ((mine, _), Some(Author::Other(Some(theirs)))) if theirs >= mine => Err(FORBIDDEN),
            _ => Ok(()),
        },
        Action::React(author) => match (member(m, v)?, author) {
            ((_, true), Some(_)) => Err(MUTED),
            _ => Ok(()),
        },
        Action::Unreact(_) => member(m, v).map(drop),
        Action::Join => {
            shown(m, v)?;
            match (m, v) {
                (Membership::Member { .. }, _) => Ok(()),
                (Membership::Banned, _) => Err(BANNED),
                (_, Visibility::Direct) => Err(ROOM_NOT_FOUND),
                _ => Ok(()),
            }
        }
        Action::Invite(target) => {
            shown(m, v)?;
            if v == Visibility::Direct {
                return Err(invalid("a direct room takes no other member"));
            }
            admin(m, v)?;
            match target {
                Some(Membership::Banned) => Err(BANNED),
                _ => Ok(()),
            }
        }
        Action::Moderate(sanction, target) => {
            shown(m, v)?;
            if v == Visibility::Direct {
                return Err(FORBIDDEN);
            }
            let mine = admin(m, v)?;
            let Some(target) = target else {
                return Ok(());
            };
            match (target.role(), sanction) {
                (Some(theirs), _) if theirs >= mine => Err(FORBIDDEN),
                (None, Sanction::Kick | Sanction::Mute | Sanction::Unmute) => Err(NOT_MEMBER),
                _ => Ok(()),
            }
        }
        Action::SetRole(target) => {
            if member(m, v)?.0 != Role::Owner {
                return Err(FORBIDDEN);
            }
            match target.map(Membership::role) {
                Some(None) => Err(NOT_MEMBER),
                _ => Ok(()),
            }
        }
        Action::Lift(setter) => match (admin(m, v)?, setter) {
            (mine, Some(theirs)) if theirs > mine => Err(FORBIDDEN),
            _ => Ok(()),
        },
        Action::UpdateSettings(reach) => {
            shown(m, v)?;
            if v == Visibility::Direct {
                return Err(invalid("a direct room has no settings"));
            }
            match (admin(m, v)?, reach) {
                (Role::Admin, Some(Reach::History)) => Err(FORBIDDEN),
                _ => Ok(()),
            }
        }
        Action::DeleteRoom => match member(m, v)? {
            (Role::Owner, _) => Ok(()),
            _ => Err(FORBIDDEN),
        },
        Action::ReviewReports => admin(m, v).map(drop),
        // A pin shows to everyone, so a muted user (whatever its role) cannot; a direct
        // room has no moderator, so both of its members may.
        Action::Pin => match member(m, v)? {
            (Role::Member, _) if !room.members_can_pin && v != Visibility::Direct => Err(FORBIDDEN),
            (_, true) => Err(MUTED),
            _ => Ok(()),
        },
    }
}

/// Whether a room's slow mode holds `m` back: a plain member's messages are spaced out;
/// the owner and admins (who moderate the room) are not held. Asked by the writer for a
/// message `check(.., Action::Send)` allowed, in a room with slow mode on (messages the
/// server API posts as a user are not held either: the key holds the server's authority).
pub fn slowed(m: Membership) -> bool {
    matches!(
        m,
        Membership::Member {
            role: Role::Member,
            ..
        }
    )
}

/// Whether `m` may mention the whole room (`@room`, which notifies every member) in a
/// room of `members` members: its owner and admins always, any member while the room
/// has at most `max` members. Anything else is sent as written and notifies nobody.
pub fn may_mention_room(m: Membership, members: i64, max: i64) -> bool {
    match m {
        Membership::Member {
            role: Role::Owner | Role::Admin,
            ..
        } => true,
        Membership::Member { .. } => members <= max,
        _ => false,
    }
}

/// Whether the room shows itself to `m`: to its members, to anyone when public, and to
/// an invited user (who must see a private room to accept).
fn shown(m: Membership, v: Visibility) -> Result<(), ApiError> {
    match (m, v) {
        (Membership::Member { .. } | Membership::Invited, _) | (_, Visibility::Public) => Ok(()),
        _ => Err(ROOM_NOT_FOUND),
    }
}

/// A member of a room it may see: its role and mute.
fn member(m: Membership, v: Visibility) -> Result<(Role, bool), ApiError> {
    shown(m, v)?;
    match m {
        Membership::Member { role, muted } => Ok((role, muted)),
        _ => Err(NOT_MEMBER),
    }
}

/// A member, for the room's stream (history, live, search, read marks, sending): an
/// outsider learns that a public room exists, and nothing of any other; an invitation
/// does not show the stream.
fn joined(m: Membership, v: Visibility) -> Result<(Role, bool), ApiError> {
    match (m, v) {
        (Membership::Member { role, muted }, _) => Ok((role, muted)),
        (_, Visibility::Public) => Err(NOT_MEMBER),
        _ => Err(ROOM_NOT_FOUND),
    }
}

/// An admin or the owner of a room it may see: its role.
fn admin(m: Membership, v: Visibility) -> Result<Role, ApiError> {
    match member(m, v)? {
        (Role::Member, _) => Err(FORBIDDEN),
        (role, _) => Ok(role),
    }
}

#[cfg(test)]
mod matrix;
