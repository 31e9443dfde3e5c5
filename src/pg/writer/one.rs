//! A quiet room's message in one round trip: a message alone in its writer's batch, with
//! no reply, attachment or mention, is stored by one call of `chat_send_one`
//! (`sql/0027_send_one.sql`) outside any explicit transaction, instead of the batched
//! path's BEGIN, lock, client_msg_id look-up, insert, NOTIFY and COMMIT.
//!
//! The access rule still decides: the function stores the message only when the standing
//! it reads under the room's lock is one that [`access::check`] lets send (the lists of
//! such standings are computed here, once, by asking the rule about every standing the
//! writer can read). Whatever it does not store comes back with the standing: a refusal
//! is answered from it by the same rule, and anything the rule allows (a client_msg_id
//! already stored, a slowed member in a room with slow mode on, a standing the lists do
//! not name) goes through the batched path, which knows those cases.

use super::{WriteJob, WriteReply};
use crate::base::access::{self, Action, Membership, RoomSettings};
use crate::base::error::{ApiError, ROOM_NOT_FOUND};
use crate::base::model::{Message, Role, Visibility};
use crate::pg::notify::{Batch, shard_channel, shard_of};
use crate::pg::pool::Worker;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::Ordering::Relaxed;

/// The call; its columns are (visibility, role, muted, blocked, seq, id, created_at).
const SEND_ONE_SQL: &str = "SELECT * FROM chat_send_one($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

/// Whether `job` may take the one-round-trip path (it must also be alone in its batch).
pub(super) fn eligible(job: &WriteJob) -> bool {
    job.extra.is_none()
}

/// Stores `job` in one round trip and answers it; gives it back when it must go through
/// the batched path (see the module's comment), or when the call failed (the batched
/// path then meets the same cause and answers it as it always has).
pub(super) fn store(worker: &mut Worker, job: WriteJob, shards: u16) -> Option<WriteJob> {
    let started = std::time::Instant::now();
    let mut msg = Message {
        room_id: job.room_id,
        user_id: job.user_id,
        username: job.username.clone(),
        content: job.content.clone(),
        client_msg_id: job.client_msg_id.clone(),
        ..Default::default()
    };
    // (A message too large to travel inline, or no connection: the batched path.)
    let Some(parts) = Batch::one_parts(&msg) else {
        return Some(job);
    };
    let channel = shard_channel(shard_of(job.room_id, shards), shards);
    let (allowed, unslowed) = standings();
    let Ok((client, st)) = worker.prepared(SEND_ONE_SQL) else {
        return Some(job);
    };
    let row = match client.query_one(
        &st,
        &[
            &job.room_id,
            &job.user_id,
            &job.username,
            &job.content,
            &job.client_msg_id,
            &job.by_key,
            allowed,
            unslowed,
            &channel,
            &parts.as_slice(),
        ],
    ) {
        Ok(row) => row,
        Err(e) => {
            log::debug!("one-round-trip send fell back to the batched path: {e}");
            return Some(job);
        }
    };
    let stored: Option<(i64, i64, String)> =
        match (row.get(4), row.get(5), row.get::<_, Option<String>>(6)) {
            (Some(seq), Some(id), Some(at)) => Some((seq, id, at)),
            _ => None,
        };
    let outcome: Result<Arc<Message>, ApiError> = match stored {
        Some((seq, id, at)) => {
            msg.id = id;
            msg.seq = seq;
            msg.created_at = at;
            Ok(Arc::new(msg))
        }
        None => {
            let Some(visibility) = row.get::<_, Option<&str>>(0) else {
                return answer(worker, job.reply, Err(ROOM_NOT_FOUND), started);
            };
            let m = Membership::from_row(row.get(1), row.get(2), false, false);
            let room = RoomSettings::from_row(visibility).with_blocked(row.get(3));
            match access::check(m, room, Action::Send) {
                Err(e) => Err(e),
                Ok(()) => return Some(job),
            }
        }
    };
    answer(worker, job.reply, outcome, started)
}

/// Counts and answers a message the call decided.
fn answer(
    worker: &Worker,
    reply: WriteReply,
    outcome: Result<Arc<Message>, ApiError>,
    started: std::time::Instant,
) -> Option<WriteJob> {
    let metrics = worker.metrics();
    metrics
        .write_seconds
        .observe(started.elapsed().as_secs_f64());
    if outcome.is_ok() {
        metrics.write_batch_size.observe(1.0);
        metrics.messages_stored.fetch_add(1, Relaxed);
    }
    reply(outcome);
    None
}

/// The standing of a sender as the function spells it: role (empty for a non-member),
/// mute, block and visibility.
fn key(role: Option<Role>, muted: bool, blocked: bool, v: Visibility) -> String {
    format!(
        "{}/{muted}/{blocked}/{}",
        role.map_or("", Role::as_str),
        v.as_str()
    )
}

/// The standings the access rule lets send, and those of them a room's slow mode does
/// not hold back, over every standing the function can read.
fn standings() -> &'static (Vec<String>, Vec<String>) {
    static LISTS: OnceLock<(Vec<String>, Vec<String>)> = OnceLock::new();
    LISTS.get_or_init(|| {
        let (mut allowed, mut unslowed) = (Vec::new(), Vec::new());
        let roles = [
            None,
            Some(Role::Member),
            Some(Role::Admin),
            Some(Role::Owner),
        ];
        let visibilities = [Visibility::Public, Visibility::Private, Visibility::Direct];
        for role in roles {
            for muted in [false, true] {
                for blocked in [false, true] {
                    for v in visibilities {
                        let m =
                            Membership::from_row(role.map(Role::as_str), Some(muted), false, false);
                        let room = RoomSettings::from_row(v.as_str()).with_blocked(blocked);
                        if access::check(m, room, Action::Send).is_ok() {
                            allowed.push(key(role, muted, blocked, v));
                            if !access::slowed(m) {
                                unslowed.push(key(role, muted, blocked, v));
                            }
                        }
                    }
                }
            }
        }
        (allowed, unslowed)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lists are the rule's answers: a member that is neither muted nor blocked, of
    /// any room; only plain members are held by slow mode.
    #[test]
    fn the_lists_are_the_rules_answers() {
        let (allowed, unslowed) = standings();
        assert_eq!(allowed.len(), 9, "{allowed:?}");
        assert!(allowed.contains(&"member/false/false/public".to_string()));
        assert!(allowed.contains(&"owner/false/false/direct".to_string()));
        assert!(!allowed.iter().any(|k| k.starts_with('/')), "no non-member");
        assert!(
            !allowed.iter().any(|k| k.contains("/true/")),
            "no mute, no block"
        );
        assert_eq!(unslowed.len(), 6, "{unslowed:?}");
        assert!(!unslowed.iter().any(|k| k.starts_with("member/")));
    }
}
