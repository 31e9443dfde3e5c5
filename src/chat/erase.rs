//! Deleting accounts (`DELETE /admin/users/:id`): after the request marks the user
//! (deactivated, sessions revoked, `users.deleting_at`), a thread on every node, one at a
//! time under an advisory lock, does the work in small transactions, like retention:
//!
//! 1. with `erase`: each message the user wrote goes through the deletion of a message
//!    (tombstone, earlier versions, reactions on it and search rows gone; a
//!    `message_deleted` entry of its room's stream), then each reaction the user left
//!    is removed (a `reaction_removed` entry); without `erase`, the messages stay;
//!    either way their author's name becomes `deleted user`;
//! 2. the user leaves every room (a `left` entry, its sockets told, an owner's room
//!    handed on);
//! 3. its uploads that no message holds go with their bytes (an erased user's attached
//!    files went with its messages in step 1; a kept message keeps its files), then the
//!    account row (its sessions, invitations and bans with it).
//!
//! What remains is read from the tables at every step, and each transaction does a
//! whole unit (one room's batch of deletions, a batch of renames, one room left), so a
//! node killed at any point leaves a state the next pass, on any node, continues from:
//! nothing is done twice and nothing is left half-done.

use crate::base::error::ApiError;
use crate::base::model::Identity;
use crate::chat::edits::{Change, undo_as};
use crate::chat::rooms;
use crate::pg::pool::Pool;
use postgres::Client;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use uuid::Uuid;

/// Arbitrary constant naming the erasers' advisory lock ("chatd_er").
const LOCK_KEY: i64 = 0x6368_6174_645f_6572;
/// The name shown for the author of messages whose account was deleted without erase.
pub const DELETED_USER: &str = "deleted user";
/// Messages deleted per transaction (all of one room).
const BATCH: i64 = 200;
/// Messages renamed per transaction.
const RENAME_BATCH: i64 = 5000;

/// The eraser's handles.
pub struct EraseThread {
    /// The node's pool (one connection while a pass runs).
    pub pool: Pool,
    /// Set at shutdown.
    pub stop: Arc<AtomicBool>,
    /// Pause between passes, and between two transactions of a pass.
    pub every: Duration,
    /// Pause between two transactions (sends in those rooms wait for one at most).
    pub pause: Duration,
}

/// Runs passes until `stop`.
pub fn run(t: EraseThread) {
    while !t.stop.load(Ordering::Acquire) {
        std::thread::sleep(t.every);
        let Ok(mut c) = t.pool.get() else {
            continue;
        };
        if let Err(e) = pass(&t, &mut c) {
            log::warn!("account deletion pass failed: {e}");
        }
    }
}

/// One pass, when this node gets the lock: every account being deleted, to the end.
fn pass(t: &EraseThread, c: &mut Client) -> Result<(), ApiError> {
    let locked: bool = c
        .query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK_KEY])?
        .get(0);
    if !locked {
        return Ok(());
    }
    let result = (|| -> Result<(), ApiError> {
        let due = c.query(
            "SELECT id, username, erase FROM users WHERE deleting_at IS NOT NULL
             ORDER BY deleting_at LIMIT 100",
            &[],
        )?;
        for row in due {
            let who = Identity {
                user_id: row.get(0),
                username: row.get(1),
                session_id: Uuid::nil(),
            };
            while !t.stop.load(Ordering::Acquire) && step(c, &who, row.get(2))? {
                std::thread::sleep(t.pause);
            }
        }
        Ok(())
    })();
    let unlock = c.execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY]);
    result?;
    unlock?;
    Ok(())
}

/// Does the next unit of work for `who`; false once the account is gone.
pub fn step(c: &mut Client, who: &Identity, erase: bool) -> Result<bool, ApiError> {
    let user = who.user_id;
    if erase {
        let row = c.query_opt(
            "SELECT room_id FROM messages WHERE user_id = $1 AND kind = 'message'
               AND deleted_at IS NULL LIMIT 1",
            &[&user],
        )?;
        if let Some(row) = row {
            let room: Uuid = row.get(0);
            let mut tx = c.transaction()?;
            lock(&mut tx, room)?;
            let ids = tx.query(
                "SELECT id FROM messages WHERE room_id = $1 AND user_id = $2
                   AND kind = 'message' AND deleted_at IS NULL ORDER BY id LIMIT $3",
                &[&room, &user, &BATCH],
            )?;
            for id in ids {
                undo_as(&mut tx, who, room, id.get(0), &Change::Delete)?;
            }
            tx.commit()?;
            return Ok(true);
        }
        let row = c.query_opt(
            "SELECT room_id FROM message_reactions WHERE user_id = $1 LIMIT 1",
            &[&user],
        )?;
        if let Some(row) = row {
            let room: Uuid = row.get(0);
            let mut tx = c.transaction()?;
            lock(&mut tx, room)?;
            let rs = tx.query(
                "SELECT message_id, emoji FROM message_reactions
                 WHERE room_id = $1 AND user_id = $2 LIMIT $3",
                &[&room, &user, &BATCH],
            )?;
            for r in rs {
                let change = Change::Unreact(r.get(1));
                undo_as(&mut tx, who, room, r.get(0), &change)?;
            }
            tx.commit()?;
            return Ok(true);
        }
    }
    {
        let renamed = c.execute(
            "UPDATE messages SET username = $2 WHERE id IN (
                 SELECT id FROM messages WHERE user_id = $1 AND username <> $2 LIMIT $3)",
            &[&user, &DELETED_USER, &RENAME_BATCH],
        )?;
        if renamed > 0 {
            return Ok(true);
        }
    }
    let row = c.query_opt(
        "SELECT room_id FROM room_members WHERE user_id = $1 LIMIT 1",
        &[&user],
    )?;
    if let Some(row) = row {
        let room: Uuid = row.get(0);
        let mut tx = c.transaction()?;
        lock(&mut tx, room)?;
        let name = if erase { DELETED_USER } else { &who.username };
        rooms::remove_member(&mut tx, room, who, (user, name), "left")?;
        tx.commit()?;
        return Ok(true);
    }
    // Chunks and thumbnails follow their file (foreign keys); an upload still streaming
    // when the sessions were revoked commits later and is left to the sweeper.
    c.execute(
        "DELETE FROM files WHERE uploader_id = $1 AND attached_message_id IS NULL",
        &[&user],
    )?;
    c.execute("DELETE FROM users WHERE id = $1", &[&user])?;
    log::info!("account {user} deleted");
    Ok(false)
}

/// Locks a room's row, as a use case's standing does (its writer waits for this
/// transaction, and this one for its writer's batch).
fn lock(c: &mut impl postgres::GenericClient, room: Uuid) -> Result<(), ApiError> {
    c.query_opt("SELECT 1 FROM rooms WHERE id = $1 FOR UPDATE", &[&room])?;
    Ok(())
}
