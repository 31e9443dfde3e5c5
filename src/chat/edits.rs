//! Messages after send (run on worker threads): edits, deletions and reactions, one use
//! case for every transport. Each is an entry of the room's stream with its own seq, and
//! the changed message's row is updated in the same transaction, so a client replaying
//! the stream and one reading history end in the same state. A retry with the same
//! `client_msg_id` applies once.

use crate::base::access::{Action, Author};
use crate::base::error::{ApiError, CLIENT_MSG_ID_REUSED, MESSAGE_NOT_FOUND, invalid};
use crate::base::model::{Identity, Kind, Message, Role, iso};
use crate::chat::mentions;
use crate::chat::messages::{Rules, check_content};
use crate::chat::rooms::Standing;
use crate::pg::audit::{self, Actor};
use crate::pg::messages::{self, Entry, message_columns};
use crate::pg::pool::Worker;
use chrono::{DateTime, Utc};
use postgres::GenericClient;
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

/// A change to a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// New content.
    Edit(String),
    /// Remove the content, keep a tombstone.
    Delete,
    /// Add the caller's reaction.
    React(String),
    /// Remove the caller's reaction.
    Unreact(String),
}

/// One emoji (the rule is shared with profiles' status emoji).
pub use crate::base::text::valid_emoji;

impl Change {
    /// Whether `m`, the entry an earlier change with the same `client_msg_id` made, is
    /// this change of message `target`: the same kind, message and (for a reaction)
    /// emoji. Only then is the retry answered with it.
    fn made(&self, m: &Message, target: i64) -> bool {
        let emoji = || m.data.as_ref().and_then(|d| d["emoji"].as_str());
        m.message_id == Some(target)
            && match self {
                Change::Edit(_) => m.kind == Kind::MessageEdited,
                Change::Delete => m.kind == Kind::MessageDeleted,
                Change::React(e) => m.kind == Kind::ReactionAdded && emoji() == Some(e),
                Change::Unreact(e) => m.kind == Kind::ReactionRemoved && emoji() == Some(e),
            }
    }

    /// The permission it needs, given the target's author once known.
    fn action(&self, author: Option<Author>) -> Action {
        match self {
            Change::Edit(_) => Action::Edit(author),
            Change::Delete => Action::Delete(author),
            Change::React(_) => Action::React(author),
            Change::Unreact(_) => Action::Unreact(author),
        }
    }
}

/// The target message, locked: its author and the author's role in the room, whether
/// deleted, when sent, its content and reactions.
struct Target {
    author: Uuid,
    author_role: Option<Role>,
    deleted: bool,
    sent: DateTime<Utc>,
    content: String,
    reactions: Option<serde_json::Value>,
}

impl Target {
    /// Whose message it is, as the access rule sees it.
    fn author(&self, who: Uuid) -> Author {
        if self.author == who {
            Author::Own
        } else {
            Author::Other(self.author_role)
        }
    }
}

fn lock_target(c: &mut impl GenericClient, room: Uuid, id: i64) -> Result<Target, ApiError> {
    let row = c.query_opt(
        "SELECT m.user_id, m.deleted_at IS NOT NULL, m.created_at, m.content, m.reactions, a.role
         FROM messages m LEFT JOIN room_members a ON a.room_id = m.room_id AND a.user_id = m.user_id
         WHERE m.id = $1 AND m.room_id = $2 AND m.kind = 'message' FOR UPDATE OF m",
        &[&id, &room],
    )?;
    let Some(r) = row else {
        return Err(MESSAGE_NOT_FOUND);
    };
    Ok(Target {
        author: r.get(0),
        author_role: r.get::<_, Option<&str>>(5).and_then(Role::parse),
        deleted: r.get(1),
        sent: r.get(2),
        content: r.get(3),
        reactions: r.get(4),
    })
}

/// The entry a retry with the same key already made, if any.
fn already(
    c: &mut impl GenericClient,
    room: Uuid,
    user: Uuid,
    key: Option<&str>,
) -> Result<Option<Message>, ApiError> {
    let Some(key) = key else {
        return Ok(None);
    };
    let sql = concat!(
        "SELECT ",
        message_columns!(),
        " FROM messages WHERE room_id = $1 AND user_id = $2 AND client_msg_id = $3"
    );
    match c.query_opt(sql, &[&room, &user, &key])? {
        Some(r) => Ok(Some(messages::from_row(&r)?)),
        None => Ok(None),
    }
}

/// Applies a change to message `target` of `room`; returns the stream entry recording
/// it. Edits: the author only, within the edit window, not of a deleted message.
/// Deletions: the author, or a room admin or owner. Reactions: any member not muted.
/// The check steps ([`check_input`], then [`check`] once the message is read) decide;
/// the do step of the change's kind ([`edit`], [`delete`], [`react`], [`unreact`])
/// writes it.
pub fn apply(
    w: &mut Worker,
    who: &Identity,
    room: Uuid,
    target: i64,
    change: Change,
    client_msg_id: Option<&str>,
    rules: Rules,
) -> Result<Message, ApiError> {
    check_input(&change)?;
    let c = w.client()?;
    let mut tx = c.transaction()?;
    // What the room refuses comes before anything about the message, a replay included.
    let s = Standing::lock(&mut tx, room, who.user_id, change.action(None))?;
    if let Some(m) = already(&mut tx, room, who.user_id, client_msg_id)? {
        return match change.made(&m, target) {
            true => Ok(m),
            false => Err(CLIENT_MSG_ID_REUSED),
        };
    }
    let t = lock_target(&mut tx, room, target)?;
    check(&s, who.user_id, &t, &change, &rules, Utc::now())?;
    let on = On {
        room,
        target,
        who,
        client_msg_id,
    };
    let m = match &change {
        Change::Edit(content) => {
            let added = mentions::edited(
                &mut tx,
                s.membership,
                room,
                target,
                who.user_id,
                content,
                rules.room_mention_max,
            )?;
            edit(&mut tx, &on, &t, content, added.as_ref())
        }
        Change::Delete => delete(&mut tx, &on),
        Change::React(emoji) => react(&mut tx, &on, emoji),
        Change::Unreact(emoji) => unreact(&mut tx, &on, emoji),
    }?;
    if matches!(change, Change::Delete) && t.author != who.user_id {
        // A moderator's deletion of another's message is audited with it.
        let data = serde_json::json!({"message_id": target});
        audit::record(
            &mut tx,
            &Actor::user(who),
            "message.delete",
            Some(room),
            Some(t.author),
            data,
        )?;
    }
    tx.commit()?;
    Ok(m)
}

/// The do step of a deletion or an unreaction by `who`, with no check (an account
/// being erased: its own messages and reactions, `chat/erase.rs`); the caller holds the
/// room's row.
pub(crate) fn undo_as(
    tx: &mut impl GenericClient,
    who: &Identity,
    room: Uuid,
    target: i64,
    change: &Change,
) -> Result<Message, ApiError> {
    let on = On {
        room,
        target,
        who,
        client_msg_id: None,
    };
    match change {
        Change::Delete => delete(tx, &on),
        Change::Unreact(emoji) => unreact(tx, &on, emoji),
        _ => Err(ApiError::Internal),
    }
}

/// The check step before anything is read: an edit's content, a reaction's emoji.
fn check_input(change: &Change) -> Result<(), ApiError> {
    match change {
        Change::Edit(content) => check_content(content),
        Change::React(e) | Change::Unreact(e) if !valid_emoji(e) => {
            Err(invalid("emoji must be one emoji"))
        }
        _ => Ok(()),
    }
}

/// The check step once the message is read (at `now`): not deleted, the access rule for
/// the change with the message's author, then the change's own policy (the edit window,
/// the cap on distinct reactions).
fn check(
    s: &Standing,
    who: Uuid,
    t: &Target,
    change: &Change,
    rules: &Rules,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    if t.deleted {
        return Err(match change {
            Change::Edit(_) => ApiError::Conflict("message_deleted", "The message was deleted"),
            _ => MESSAGE_NOT_FOUND,
        });
    }
    s.allows(change.action(Some(t.author(who))))?;
    match change {
        Change::Edit(_) => {
            let age = now
                .signed_duration_since(t.sent)
                .to_std()
                .unwrap_or_default();
            if rules.edit_window.is_some_and(|w| age > w) {
                return Err(ApiError::Forbidden(
                    "edit_window_passed",
                    "The time to edit this message has passed",
                ));
            }
        }
        Change::React(emoji) => {
            let counts = t.reactions.as_ref().and_then(|v| v.as_object());
            let known = counts.is_some_and(|m| m.contains_key(emoji.as_str()));
            if !known && counts.map_or(0, |m| m.len()) >= rules.max_reactions {
                return Err(ApiError::BadRequest(
                    "too_many_reactions",
                    format!(
                        "at most {} different reactions per message",
                        rules.max_reactions
                    ),
                ));
            }
        }
        Change::Delete | Change::Unreact(_) => {}
    }
    Ok(())
}

/// Who changes which message, for the do steps.
struct On<'a> {
    room: Uuid,
    target: i64,
    who: &'a Identity,
    client_msg_id: Option<&'a str>,
}

impl On<'_> {
    /// Appends the stream entry that records the change.
    fn record(
        &self,
        tx: &mut impl GenericClient,
        kind: Kind,
        content: &str,
        data: Option<&serde_json::Value>,
    ) -> Result<Message, ApiError> {
        let entry = Entry {
            room: self.room,
            user: self.who.user_id,
            username: &self.who.username,
            content,
            kind,
            data,
            target: Some(self.target),
            client_msg_id: self.client_msg_id,
        };
        Ok(messages::append_entry(tx, &entry)?)
    }
}

/// New content; the one it replaces is kept as a version.
fn edit(
    tx: &mut impl GenericClient,
    on: &On<'_>,
    t: &Target,
    content: &str,
    mentions: Option<&serde_json::Value>,
) -> Result<Message, ApiError> {
    tx.execute(
        "INSERT INTO message_edits (message_id, room_id, version, content, edited_at)
         SELECT $1, $2, coalesce(max(version), 0) + 1, $3, now()
         FROM message_edits WHERE room_id = $2 AND message_id = $1",
        &[&on.target, &on.room, &t.content],
    )?;
    tx.execute(
        "UPDATE messages SET content = $2, edited_at = now() WHERE id = $1",
        &[&on.target, &content],
    )?;
    on.record(tx, Kind::MessageEdited, content, mentions)
}

/// A tombstone: the content leaves storage (the message, its earlier versions, the edit
/// entries that carried it, its reactions, its pin: the deletion entry unpins it, its
/// attached files and their bytes), and the search index now rather than when the
/// indexer gets there.
fn delete(tx: &mut impl GenericClient, on: &On<'_>) -> Result<Message, ApiError> {
    let (room, target) = (on.room, on.target);
    tx.execute(
        "UPDATE messages SET content = '', deleted_at = now(), attachments = NULL,
                reactions = NULL WHERE id = $1",
        &[&target],
    )?;
    tx.execute(
        "UPDATE messages SET content = '' WHERE target_id = $1 AND room_id = $2
           AND kind = 'message_edited'",
        &[&target, &room],
    )?;
    tx.execute(
        "DELETE FROM message_edits WHERE room_id = $2 AND message_id = $1",
        &[&target, &room],
    )?;
    tx.execute(
        "DELETE FROM message_reactions WHERE room_id = $2 AND message_id = $1",
        &[&target, &room],
    )?;
    tx.execute(
        "DELETE FROM message_search WHERE room_id = $1 AND message_id = $2",
        &[&room, &target],
    )?;
    tx.execute("DELETE FROM mentions WHERE message_id = $1", &[&target])?;
    crate::chat::pins::forget(tx, room, target)?;
    crate::chat::files::forget(tx, room, target)?;
    on.record(tx, Kind::MessageDeleted, "", None)
}

/// The caller's reaction, once per emoji; the message's counts follow.
fn react(tx: &mut impl GenericClient, on: &On<'_>, emoji: &str) -> Result<Message, ApiError> {
    let n = tx.execute(
        "INSERT INTO message_reactions (message_id, user_id, emoji, room_id)
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        &[&on.target, &on.who.user_id, &emoji, &on.room],
    )?;
    if n == 0 {
        return Err(ApiError::Conflict(
            "already_reacted",
            "You already reacted with this emoji",
        ));
    }
    tx.execute(
        "UPDATE messages SET reactions = jsonb_set(coalesce(reactions, '{}'), ARRAY[$2],
                to_jsonb(coalesce((reactions ->> $2)::int, 0) + 1)) WHERE id = $1",
        &[&on.target, &emoji],
    )?;
    on.record(
        tx,
        Kind::ReactionAdded,
        "",
        Some(&json!({ "emoji": emoji })),
    )
}

/// Takes the caller's reaction back; the message's counts follow.
fn unreact(tx: &mut impl GenericClient, on: &On<'_>, emoji: &str) -> Result<Message, ApiError> {
    let n = tx.execute(
        "DELETE FROM message_reactions
         WHERE room_id = $4 AND message_id = $1 AND user_id = $2 AND emoji = $3",
        &[&on.target, &on.who.user_id, &emoji, &on.room],
    )?;
    if n == 0 {
        return Err(ApiError::Conflict(
            "not_reacted",
            "You have no such reaction on this message",
        ));
    }
    tx.execute(
        "UPDATE messages SET reactions = CASE
             WHEN (reactions ->> $2)::int <= 1 THEN nullif(reactions - $2, '{}')
             ELSE jsonb_set(reactions, ARRAY[$2], to_jsonb((reactions ->> $2)::int - 1))
         END WHERE id = $1",
        &[&on.target, &emoji],
    )?;
    on.record(
        tx,
        Kind::ReactionRemoved,
        "",
        Some(&json!({ "emoji": emoji })),
    )
}

/// An earlier version of an edited message.
#[derive(Debug, Serialize)]
pub struct Version {
    /// 1 for the original, then each edit.
    pub version: i32,
    /// The content it had.
    pub content: String,
    /// When it was replaced.
    pub replaced_at: String,
}

/// The earlier versions of a message, oldest first (members only).
pub fn versions(
    w: &mut Worker,
    who: &Identity,
    room: Uuid,
    id: i64,
) -> Result<Vec<Version>, ApiError> {
    let c = w.client()?;
    let mut tx = c.transaction()?;
    Standing::lock(&mut tx, room, who.user_id, Action::EditHistory)?;
    lock_target(&mut tx, room, id)?;
    let rows = tx.query(
        "SELECT version, content, edited_at FROM message_edits
         WHERE room_id = $2 AND message_id = $1 ORDER BY version",
        &[&id, &room],
    )?;
    Ok(rows
        .iter()
        .map(|r| Version {
            version: r.get(0),
            content: r.get(1),
            replaced_at: iso(r.get(2)),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::access::{Membership, RoomSettings};
    use crate::base::model::Visibility;
    use std::time::Duration;

    const ME: Uuid = Uuid::from_u128(1);
    const THEM: Uuid = Uuid::from_u128(2);

    fn standing(role: Role, muted: bool) -> Standing {
        Standing {
            room: RoomSettings::from_row(Visibility::Public.as_str()),
            membership: Membership::Member { role, muted },
        }
    }

    fn target(author: Uuid, sent: DateTime<Utc>) -> Target {
        Target {
            author,
            author_role: Some(Role::Member),
            deleted: false,
            sent,
            content: "old".into(),
            reactions: Some(json!({"👍": 1, "🎉": 2})),
        }
    }

    fn rules(window_secs: u64, max_reactions: usize) -> Rules {
        Rules {
            edit_window: (window_secs > 0).then(|| Duration::from_secs(window_secs)),
            max_reactions,
            max_attachments: 10,
            room_mention_max: 20,
        }
    }

    fn code(r: Result<(), ApiError>) -> &'static str {
        r.map_or_else(|e| e.code(), |()| "ok")
    }

    #[test]
    fn the_check_step_decides_before_anything_is_written() {
        let now = Utc::now();
        let mine = target(ME, now);
        let theirs = target(THEM, now);
        let member = standing(Role::Member, false);
        let edit = Change::Edit("new".into());
        let any = rules(0, 20);
        // A deleted message: an edit conflicts, anything else finds nothing.
        let gone = Target {
            deleted: true,
            ..target(ME, now)
        };
        assert_eq!(
            code(check(&member, ME, &gone, &edit, &any, now)),
            "message_deleted"
        );
        let delete = check(&member, ME, &gone, &Change::Delete, &any, now);
        assert_eq!(code(delete), "message_not_found");
        // Access, with the author known.
        assert_eq!(
            code(check(&member, ME, &theirs, &edit, &any, now)),
            "forbidden"
        );
        let muted = standing(Role::Member, true);
        assert_eq!(code(check(&muted, ME, &mine, &edit, &any, now)), "muted");
        assert_eq!(
            code(check(&muted, ME, &mine, &Change::Delete, &any, now)),
            "ok"
        );
        let delete = check(&member, ME, &theirs, &Change::Delete, &any, now);
        assert_eq!(code(delete), "forbidden");
        let admin = standing(Role::Admin, false);
        assert_eq!(
            code(check(&admin, ME, &theirs, &Change::Delete, &any, now)),
            "ok"
        );
        // The edit window, from the configuration.
        let old = target(ME, now - chrono::Duration::seconds(600));
        assert_eq!(code(check(&member, ME, &old, &edit, &any, now)), "ok");
        let window = rules(300, 20);
        let late = check(&member, ME, &old, &edit, &window, now);
        assert_eq!(code(late), "edit_window_passed");
        // The cap on distinct reactions counts emoji, not reactions.
        let two = rules(0, 2);
        let new = Change::React("🔥".into());
        assert_eq!(
            code(check(&member, ME, &mine, &new, &two, now)),
            "too_many_reactions"
        );
        let known = Change::React("👍".into());
        assert_eq!(code(check(&member, ME, &mine, &known, &two, now)), "ok");
        assert_eq!(code(check(&muted, ME, &mine, &known, &two, now)), "muted");
    }

    #[test]
    fn input_is_checked_before_any_read() {
        assert_eq!(
            code(check_input(&Change::Edit(String::new()))),
            "validation_failed"
        );
        assert_eq!(
            code(check_input(&Change::React("ok".into()))),
            "invalid_payload"
        );
        assert_eq!(code(check_input(&Change::Unreact("👍".into()))), "ok");
        assert_eq!(code(check_input(&Change::Delete)), "ok");
    }

    #[test]
    fn emoji_are_single_short_emoji() {
        for ok in ["👍", "❤️", "👩‍👩‍👧", "🇫🇷", "👍🏽", "1️⃣", "✅"]
        {
            assert!(valid_emoji(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            "ok",
            "👍👍",
            "1",
            "<b>",
            " 👍",
            "\u{0}",
            "👍 ",
            &"👍".repeat(9),
        ] {
            assert!(!valid_emoji(bad), "{bad:?}");
        }
    }
}
