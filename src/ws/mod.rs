//! WebSocket: frame codec, JSON events, per-socket sessions and the per-loop
//! [`Hub`] that joins rooms, sends, and fans out.
//!
//! The event loop (net/) drives this layer through the session interface of
//! `base/session.rs`, as it drives HTTP: the [`Hub`] is the WebSocket `Protocol`, it
//! sees the loop's connections as [`Sockets`] (each a [`Session`] over a
//! [`Transport`]), opens a session from the `Upgrade` an HTTP request returned, and
//! answers every call (readable, drained, backlogged, a [`LoopEvent`], sweep, shutdown)
//! with [`Outcome`]s the loop applies. This layer never names the loop's types.

pub mod codec;
pub mod events;
pub mod gaps;
pub mod hub;
pub mod interest;
pub mod joins;
pub mod profiles;
pub mod registry;
pub mod rejoins;
pub mod session;
pub mod sink;
pub mod store;
pub mod users;

use crate::base::error::ApiError;
use crate::base::model::Message;
use crate::base::session::Sessions;
use crate::pg::notify::ReadMark;
use std::collections::HashSet;
use std::sync::Arc;
use uuid::Uuid;

pub use crate::base::session::{Outcome, Outcomes, Transport};
pub use hub::{Hub, WsCtx};
pub use interest::Interest;
pub use profiles::Profiles;
pub use rejoins::{JoinHistory, Rejoins};
pub use session::Session;
pub use sink::NodeSink;
pub use store::{PgStore, Store};

/// The loop's WebSocket connections: its connection table seen through [`Session`]s.
pub trait Sockets: Sessions<Session> {}

impl<T: Sessions<Session>> Sockets for T {}

/// How other threads reach one loop's WebSocket side.
pub trait Mailbox: Send + Sync {
    /// Posts an event to the loop and wakes it.
    fn post(&self, ev: LoopEvent);
}

/// A stored message batch of one room, as received from the listener.
pub struct LiveBatch {
    /// Room.
    pub room: Uuid,
    /// Messages, ascending seq.
    pub msgs: Vec<Arc<Message>>,
}

/// What a join check found.
pub struct JoinData {
    /// The room's last seq when checked.
    pub room_seq: i64,
    /// History after `last_seen_seq`, when given.
    pub history: Option<Arc<JoinHistory>>,
}

/// Messages for the WebSocket side of a loop.
pub enum LoopEvent {
    /// A join was checked.
    Joined {
        /// Connection.
        key: usize,
        /// Socket id.
        sock: u64,
        /// Room.
        room: Uuid,
        /// Join request id.
        join_id: u64,
        /// Outcome.
        result: Result<JoinData, ApiError>,
    },
    /// A message was stored (or refused).
    Sent {
        /// Connection.
        key: usize,
        /// Socket id.
        sock: u64,
        /// The sender's idempotency key.
        client_msg_id: Option<String>,
        /// Outcome.
        result: Result<Arc<Message>, ApiError>,
    },
    /// Rows for one socket that is behind its room.
    CatchUp {
        /// Connection.
        key: usize,
        /// Socket id.
        sock: u64,
        /// Room.
        room: Uuid,
        /// Rows, ascending, and the seq they bring the socket to (the last row's, or
        /// the top of the range when retention removed every row of it).
        result: Result<(Vec<Arc<Message>>, i64), ApiError>,
    },
    /// Rows that fill a gap in a room's live stream.
    RoomFetched {
        /// Room.
        room: Uuid,
        /// The range asked for, for a retry.
        after: i64,
        /// Rows, ascending, and whether the page was full (more may follow).
        result: Result<(Vec<Arc<Message>>, bool), ApiError>,
    },
    /// Live messages.
    Live(Arc<LiveBatch>),
    /// An ephemeral room event (presence, typing, joins), already framed.
    RoomEvent {
        /// Room.
        room: Uuid,
        /// Do not send to this user's sockets.
        except: Option<Uuid>,
        /// The frame.
        frame: Arc<[u8]>,
    },
    /// A user lost membership: their sockets leave the room, told why.
    Kick {
        /// Room.
        room: Uuid,
        /// User.
        user: Uuid,
        /// `left`, `kicked` or `banned`.
        reason: Arc<str>,
    },
    /// A room was deleted: every socket leaves it.
    Gone(Uuid),
    /// Read marks moved (the users' sockets and the rooms' receipts).
    Reads(Arc<Vec<ReadMark>>),
    /// Sessions were revoked: close their sockets.
    Revoke(Arc<Vec<Uuid>>),
    /// A frame for every socket of one user on this loop.
    User {
        /// User.
        user: Uuid,
        /// The encoded frame.
        frame: Arc<[u8]>,
    },
    /// A frame for every socket of these users on this loop (`user_updated`).
    Users {
        /// Users.
        users: Arc<HashSet<Uuid>>,
        /// The encoded frame.
        frame: Arc<[u8]>,
    },
    /// The listener reconnected: back-fill every room before live delivery resumes.
    Resync,
    /// The listener LISTENs to more shards: joins waiting for them may proceed.
    ShardsReady,
}

impl LoopEvent {
    /// Whether a mailbox over its bound may drop this event: a live batch (the loop
    /// then back-fills every room from the database, as after a listener reconnect, so
    /// no message is skipped) or an ephemeral room event (presence, typing, joins).
    /// Answers, kicks, deletions, read marks and revocations are never dropped.
    pub fn sheddable(&self) -> bool {
        matches!(self, LoopEvent::Live(_) | LoopEvent::RoomEvent { .. })
    }
}
