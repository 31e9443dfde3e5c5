//! Notification levels: what each member wants to be notified of in a room (all
//! messages, mentions only, nothing), set with `PUT /rooms/:id/notifications` and shown
//! by `GET /me/rooms`. The older `{muted}` form of the route is the same fact:
//! `muted: true` is `none`, `false` is `all`, and `notifications_muted` is kept equal
//! to `level == none` for clients that know only it.

use crate::base::access::Action;
use crate::base::error::ApiError;
use crate::base::model::{Identity, Visibility};
use crate::chat::rooms::Standing;
use crate::pg::pool::Worker;
use serde::Serialize;
use uuid::Uuid;

/// What a member is notified of in a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Every message.
    All,
    /// Messages that mention the member (by name or `@room`).
    Mentions,
    /// Nothing.
    None,
}

impl Level {
    /// The level a client names, if it is one.
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "all" => Some(Level::All),
            "mentions" => Some(Level::Mentions),
            "none" => Some(Level::None),
            _ => None,
        }
    }

    /// As stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::All => "all",
            Level::Mentions => "mentions",
            Level::None => "none",
        }
    }

    /// The old `{muted}` form: muted is `none`, unmuted `all`.
    pub fn from_muted(muted: bool) -> Level {
        if muted { Level::None } else { Level::All }
    }

    /// A member's level: muted is `none`; else its choice; else the default, `all` in
    /// direct rooms and in rooms of at most `above` members, `mentions` in larger ones.
    pub fn effective(
        chosen: Option<&str>,
        muted: bool,
        visibility: Visibility,
        members: i64,
        above: i64,
    ) -> Level {
        if muted {
            return Level::None;
        }
        if let Some(l) = chosen.and_then(Level::parse) {
            return l;
        }
        match visibility {
            Visibility::Direct => Level::All,
            _ if members > above => Level::Mentions,
            _ => Level::All,
        }
    }
}

/// Sets the caller's level in a room (and `notifications_muted` with it); any member may.
pub fn set(w: &mut Worker, who: &Identity, room: Uuid, level: Level) -> Result<(), ApiError> {
    let c = w.client()?;
    let mut tx = c.transaction()?;
    Standing::lock(&mut tx, room, who.user_id, Action::SetNotifications)?;
    tx.execute(
        "UPDATE room_members SET notification_level = $3, notifications_muted = $3 = 'none'
         WHERE room_id = $1 AND user_id = $2",
        &[&room, &who.user_id, &level.as_str()],
    )?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_by_kind_and_size_and_muted_wins() {
        let eff = |c, m, v, n| Level::effective(c, m, v, n, 100);
        assert_eq!(eff(None, false, Visibility::Direct, 2), Level::All);
        assert_eq!(eff(None, false, Visibility::Public, 100), Level::All);
        assert_eq!(eff(None, false, Visibility::Public, 101), Level::Mentions);
        assert_eq!(
            eff(Some("all"), false, Visibility::Private, 500),
            Level::All
        );
        assert_eq!(eff(Some("all"), true, Visibility::Public, 5), Level::None);
        assert_eq!(Level::parse("loud"), None);
        assert_eq!(Level::from_muted(true).as_str(), "none");
    }
}
