//! What the hub asks of the database side, as one interface: join checks, range reads,
//! sends and changes, typing, presence and read marks. Every call returns at once; an
//! answer comes back through the `Reply` (which the hub makes post a `LoopEvent` to its
//! loop). [`PgStore`] is the node's: the writers, the query workers, the batched checks
//! and the presence and read-marks threads. The hub's unit tests use their own.

use crate::base::access::Action;
use crate::base::error::ApiError;
use crate::base::model::{Identity, Message};
use crate::chat::edits::{self, Change};
use crate::chat::heads::{Heads, Then};
use crate::chat::messages::Rules;
use crate::chat::presence::{self, Presence, PresenceOp};
use crate::chat::reads::{Mark, Reads};
use crate::chat::send::{Draft, NotQueued, Sender};
use crate::pg::messages;
use crate::pg::pool::JobQueue;
use crate::ws::{JoinData, JoinHistory};
use std::sync::Arc;
use uuid::Uuid;

/// Where an answer goes, called once on whichever thread has it.
pub type Reply<T> = Box<dyn FnOnce(Result<T, ApiError>) + Send>;

/// Most messages in a `history` frame (a protocol limit, docs/PROTOCOL.md).
pub const HISTORY_PAGE: i64 = 100;

/// The database side of the hub. A call that returns `Err` was not queued (its reply is
/// dropped uncalled); one that returns `Ok` calls its reply exactly once.
pub trait Store: Send + Sync {
    /// May `user` subscribe to `room`? With the room's position and, after
    /// `last_seen`, at most a history page. A refusal comes through the reply.
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
}

impl Store for PgStore {
    fn check_join(&self, room: Uuid, user: Uuid, last_seen: Option<i64>, reply: Reply<JoinData>) {
        // Membership and the room's position come from the batched checks; history, when
        // asked for, is read on the same worker right after.
        let then: Then = Box::new(move |head| {
            reply(head.and_then(|(w, pos)| {
                let history = match last_seen {
                    Some(after) => {
                        let page = HISTORY_PAGE + 1;
                        let mut rows =
                            messages::range_on(w, room, after, i64::MAX, page, pos.last)?;
                        let more = rows.len() as i64 > HISTORY_PAGE;
                        rows.truncate(HISTORY_PAGE as usize);
                        // Seqs are gapless: rows that start later than asked were removed.
                        let first = rows.first().map_or(pos.first.max(after + 1), |m| m.seq);
                        let horizon = (first > after + 1 && after < pos.last).then_some(first);
                        Some(JoinHistory {
                            rows,
                            more,
                            after,
                            horizon,
                        })
                    }
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
