//! State shared by every thread of a node, and the typed messages sent to event loops.

use crate::auth::password::Hasher;
use crate::auth::tokens::{Identity, TokenKeys};
use crate::config::Config;
use crate::http::response::Response;
use crate::metrics::Metrics;
use crate::pg::pool::{JobQueue, Pool};
use crate::pg::writer::Writers;
use crate::ws::LoopEvent;
use crossbeam_channel::Sender;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use uuid::Uuid;

/// A message for an event loop.
pub enum LoopMsg {
    /// The answer to an HTTP request that went to a worker.
    Http {
        /// Connection slot.
        key: usize,
        /// Request id (guards against a reused slot or an answer already given).
        req: u64,
        /// The response.
        resp: Response,
    },
    /// Something for the WebSocket side of the loop.
    Ws(LoopEvent),
    /// Stop accepting, close sockets with 1001, exit when flushed.
    Shutdown,
}

/// How other threads reach one event loop: a channel plus its Waker, with wakes coalesced.
pub struct LoopHandle {
    tx: Sender<LoopMsg>,
    waker: Arc<mio::Waker>,
    /// Set while a wake is pending, so a burst of sends costs one wake-up.
    pending: AtomicBool,
}

impl LoopHandle {
    /// A handle over the loop's channel and waker.
    pub fn new(tx: Sender<LoopMsg>, waker: Arc<mio::Waker>) -> LoopHandle {
        LoopHandle {
            tx,
            waker,
            pending: AtomicBool::new(false),
        }
    }

    /// Sends a message and wakes the loop unless a wake is already pending.
    pub fn send(&self, msg: LoopMsg) {
        if self.tx.send(msg).is_ok() && !self.pending.swap(true, Ordering::AcqRel) {
            let _ = self.waker.wake();
        }
    }

    /// Called by the loop before it drains its channel.
    pub fn clear_pending(&self) {
        self.pending.store(false, Ordering::Release);
    }

    /// Wakes the loop again (it left messages for its next turn).
    pub fn rewake(&self) {
        self.pending.store(true, Ordering::Release);
        let _ = self.waker.wake();
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.tx.len()
    }

    /// True when no message waits.
    pub fn is_empty(&self) -> bool {
        self.tx.is_empty()
    }
}

/// Everything the threads of one node share.
pub struct Shared {
    /// Effective configuration.
    pub cfg: Config,
    /// This node's name.
    pub node_id: String,
    /// Token keys.
    pub keys: TokenKeys,
    /// Password hasher (used on auth workers only).
    pub hasher: Hasher,
    /// Database pool.
    pub pool: Pool,
    /// Query workers.
    pub db: JobQueue,
    /// Password workers.
    pub auth: JobQueue,
    /// Message writers.
    pub writers: Writers,
    /// The event loops.
    pub loops: Vec<LoopHandle>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// True while the notification listener is connected and caught up.
    pub listener_up: AtomicBool,
    /// Revoked session ids with the time (s) after which their tokens are expired anyway.
    pub revoked: RwLock<HashMap<Uuid, u64>>,
    /// Set once shutdown began.
    pub shutting_down: Arc<AtomicBool>,
    /// Per event loop: (rooms with subscribers, subscriptions), for metrics.
    pub loop_stats: Vec<RwLock<(usize, usize)>>,
    /// Rooms with subscribers on this node, with the number of loops that have them;
    /// the listener drops notifications for other rooms.
    pub interest: RwLock<HashMap<Uuid, usize>>,
    /// The presence thread.
    pub presence: crate::chat::presence::Presence,
    /// Last heartbeat reached the database.
    pub db_ok: AtomicBool,
    /// Login attempts per address and per account.
    pub logins: crate::limits::Windows,
    /// Open connections per address.
    pub per_ip: crate::limits::PerIp,
    /// Each room's newest messages, for history reads.
    pub history: crate::chat::history::HistoryCache,
    /// Membership and head-seq checks waiting for a query worker.
    pub heads: crate::chat::heads::Heads,
}

impl Shared {
    /// Verifies an access token and that its session was not revoked.
    pub fn authenticate(&self, token: &str) -> Option<Identity> {
        let id = self.keys.verify_access(token)?;
        let revoked = self
            .revoked
            .read()
            .map(|r| r.contains_key(&id.session_id))
            .unwrap_or(false);
        (!revoked).then_some(id)
    }

    /// Records revoked sessions locally (other nodes learn it through a notification).
    pub fn mark_revoked(&self, sessions: &[Uuid]) {
        let until = crate::auth::tokens::now_secs() + self.keys.access_ttl + 5;
        if let Ok(mut r) = self.revoked.write() {
            let now = crate::auth::tokens::now_secs();
            r.retain(|_, t| *t > now);
            for s in sessions {
                r.insert(*s, until);
            }
        }
    }

    /// True when the node can serve: database reachable and listener connected.
    pub fn ready(&self) -> bool {
        self.listener_up.load(Ordering::Acquire)
            && self.db_ok.load(Ordering::Acquire)
            && !self.shutting_down.load(Ordering::Acquire)
    }

    /// Sends a WebSocket-side event to one loop.
    pub fn to_loop(&self, idx: usize, ev: LoopEvent) {
        if let Some(l) = self.loops.get(idx) {
            l.send(LoopMsg::Ws(ev));
        }
    }

    /// A loop gained its first subscriber in `room`.
    pub fn gain_interest(&self, room: Uuid) {
        if let Ok(mut m) = self.interest.write() {
            *m.entry(room).or_insert(0) += 1;
        }
    }

    /// A loop lost its last subscriber in `room`.
    pub fn lose_interest(&self, room: Uuid) {
        if let Ok(mut m) = self.interest.write()
            && let Some(n) = m.get_mut(&room)
        {
            *n -= 1;
            if *n == 0 {
                m.remove(&room);
            }
        }
    }

    /// Whether some loop of this node has subscribers in `room`.
    pub fn has_interest(&self, room: Uuid) -> bool {
        self.interest
            .read()
            .map(|m| m.contains_key(&room))
            .unwrap_or(true)
    }
}
