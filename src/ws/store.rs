//! What the hub asks of the database side, as one interface: join checks, range reads,
//! sends and changes, typing, presence and read marks. Every call returns at once; an
//! answer comes back through the `Reply` (which the hub makes post a `LoopEvent` to its
//! loop). [`PgStore`] is the node's: the writers, the query workers, the batched checks
//! and the presence and read-marks threads. The hub's unit tests use their own.

use crate::base::access::Action;
use crate::base::error::ApiError;
use crate::base::model::{Identity, Message};
use crate::chat::edits::{self, Change};
use crate::chat::heads::Pos;
use crate::chat::heads::{Heads, Then};
use crate::chat::messages::Rules;
use crate::chat::presence::{self, Presence, PresenceOp};
use crate::chat::reads::{Mark, Reads};
use crate::chat::send::{Draft, NotQueued, Sender};
use crate::pg::messages;
use crate::pg::pool::JobQueue;
use crate::pg::pool::Worker;
use crate::ws::rejoins::Found;
use crate::ws::{JoinData, JoinHistory, Rejoins};
use std::sync::Arc;
use uuid::Uuid;

/// Where an answer goes, called once on whichever thread has it.
pub type Reply<T> = Box<dyn FnOnce(Result<T, ApiError>) + Send>;

/// Most messages in a `history` frame (a protocol limit, docs/PROTOCOL.md).
pub const HISTORY_PAGE: i64 = 100;
/// Most messages a join reads at once: the history page and the catch-up batches after
/// it come from one read when the socket missed no more than this.
pub const JOIN_READ: i64 = 1000;

/// The database side of the hub. A call that returns `Err` was not queued (its reply is
/// dropped uncalled); one that returns `Ok` calls its reply exactly once.
pub trait Store: Send + Sync {
    /// May `user` subscribe to `room`? With the room's position and, after
    /// `last_seen`, what was missed (at most [`JOIN_READ`] messages). A refusal comes through the reply.
    fn check_join(&self, room: Uuid, user: Uuid, last_seen: Option<i64>, reply: Reply<JoinData>);
    /// The rows of `room` with seq in `(after, upto]`, ascending, at most `limit`.
    fn range(
        &self,
        room: Uuid,
        after: i64,
        upto: i64,
        limit: i64,
        reply: Reply<Vec<Arc<Message>>>,
    ) -> Result<(), ApiError>;
    /// Sends a checked draft (the send use case).
    fn send(
        &self,
        who: Identity,
        draft: Draft,
        reply: Reply<Arc<Message>>,
    ) -> Result<(), NotQueued>;
    /// An edit, deletion or reaction (the edits use case), on a query worker.
    fn change(
        &self,
        who: Identity,
        room: Uuid,
        target: i64,
        change: Change,
        cmid: Option<String>,
        reply: Reply<Arc<Message>>,
    ) -> Result<(), ApiError>;
    /// Relays a typing start or stop (ephemeral: may be dropped under overload).
    fn typing(&self, who: &Identity, room: Uuid, on: bool);
    /// A presence change for the presence thread.
    fn presence(&self, op: PresenceOp);
    /// A read mark for the read-marks thread.
    fn mark(&self, mark: Mark);
}

/// The node's database side.
pub struct PgStore {
    /// The send use case (the message writers behind it).
    pub sender: Sender,
    /// Query workers (catch-up and gap fetches, changes, typing notifications).
    pub db: JobQueue,
    /// Batched membership checks.
    pub heads: Arc<Heads>,
    /// The presence thread.
    pub presence: Presence,
    /// The read-marks thread.
    pub reads: Reads,
    /// What changes are checked against (`[messages]`).
    pub rules: Rules,
    /// Reads of joins from a position, shared by the room's joins from the same one.
    pub rejoins: Arc<Rejoins>,
}

impl Store for PgStore {
    fn check_join(&self, room: Uuid, user: Uuid, last_seen: Option<i64>, reply: Reply<JoinData>) {
        // Membership and the room's position come from the batched checks; what was
        // missed, when asked for, is read on the same worker right after (or taken from
        // another join of the room from the same position).
        let rejoins = self.rejoins.clone();
        let then: Then = Box::new(move |head| {
            reply(head.and_then(|(w, pos)| {
                let history = match last_seen {
                    Some(after) => Some(missed(w, &rejoins, room, after, pos)?),
                    None => None,
                };
                Ok(JoinData {
                    room_seq: pos.last,
                    history,
                })
            }))
        });
        self.heads.check(room, user, Action::Subscribe, then);
    }

    fn range(
        &self,
        room: Uuid,
        after: i64,
        upto: i64,
        limit: i64,
        reply: Reply<Vec<Arc<Message>>>,
    ) -> Result<(), ApiError> {
        // The rows up to `upto` are known to exist: a standby must hold them to answer.
        self.db.submit(Box::new(move |w| {
            reply(messages::range_on(w, room, after, upto, limit, upto))
        }))
    }

    fn send(
        &self,
        who: Identity,
        draft: Draft,
        reply: Reply<Arc<Message>>,
    ) -> Result<(), NotQueued> {
        self.sender.submit(who, draft, reply)
    }

    fn change(
        &self,
        who: Identity,
        room: Uuid,
        target: i64,
        change: Change,
        cmid: Option<String>,
        reply: Reply<Arc<Message>>,
    ) -> Result<(), ApiError> {
        let rules = self.rules;
        self.db.submit(Box::new(move |w| {
            let result = edits::apply(w, &who, room, target, change, cmid.as_deref(), rules);
            reply(result.map(Arc::new))
        }))
    }

    fn typing(&self, who: &Identity, room: Uuid, on: bool) {
        presence::typing(&self.db, who, room, on);
    }

    fn presence(&self, op: PresenceOp) {
        self.presence.send(op);
    }

    fn mark(&self, mark: Mark) {
        self.reads.mark(mark);
    }
}

/// What a join from `after` missed, up to [`JOIN_READ`] messages: a kept read of the
/// room from the same position when it covers the room's `pos`, that read extended by
/// the rows past it, or a read of its own; kept for the room's next joins.
fn missed(
    w: &mut Worker,
    rejoins: &Rejoins,
    room: Uuid,
    after: i64,
    pos: Pos,
) -> Result<Arc<JoinHistory>, ApiError> {
    let read = match rejoins.find(room, after, pos.last) {
        Found::Covers(h) => return Ok(h),
        Found::Short(h) => extend(w, room, &h, pos)?,
        Found::None => None,
    };
    let read = match read {
        Some(r) => r,
        None => {
            let mut rows = messages::range_on(w, room, after, i64::MAX, JOIN_READ + 1, pos.last)?;
            let more = rows.len() as i64 > JOIN_READ;
            rows.truncate(JOIN_READ as usize);
            // Seqs are gapless: rows that start later than asked were removed.
            let first = rows.first().map_or(pos.first.max(after + 1), |m| m.seq);
            let horizon = (first > after + 1 && after < pos.last).then_some(first);
            Arc::new(JoinHistory::new(after, rows, more, horizon))
        }
    };
    rejoins.keep(room, after, pos.last, &read);
    Ok(read)
}

/// A kept read followed by the rows past it, when they continue it.
fn extend(
    w: &mut Worker,
    room: Uuid,
    kept: &JoinHistory,
    pos: Pos,
) -> Result<Option<Arc<JoinHistory>>, ApiError> {
    let Some(reach) = kept.reach() else {
        return Ok(None);
    };
    let room_left = JOIN_READ - kept.rows.len() as i64;
    let rest = messages::range_on(w, room, reach, i64::MAX, room_left + 1, pos.last)?;
    if rest.first().is_some_and(|m| m.seq != reach + 1) {
        return Ok(None); // retention passed the kept rows: read afresh
    }
    let more = rest.len() as i64 > room_left;
    let mut rows = kept.rows.clone();
    rows.extend(rest.into_iter().take(room_left.max(0) as usize));
    Ok(Some(Arc::new(JoinHistory::new(
        kept.after,
        rows,
        more,
        kept.horizon,
    ))))
}
