//! WebSocket: frame codec, JSON events, per-socket sessions and the per-loop
//! [`Hub`] that joins rooms, sends, and fans out.
//!
//! The event loop (net/) drives this layer through the narrow interface defined here:
//! it hands the hub its connections as [`Sockets`] (each a [`Session`] over a
//! [`Transport`]), calls the hub when a socket is readable, drained, backlogged, closed
//! or swept, or when a [`LoopEvent`] arrives, and applies the [`Outcome`]s the hub
//! answers with. This layer never names the loop's types.

pub mod codec;
mod deliver;
pub mod events;
pub mod hub;
pub mod interest;
mod join;
pub mod registry;
pub mod session;

use crate::base::error::ApiError;
use crate::base::model::Message;
use crate::pg::notify::ReadMark;
use std::io::Read;
use std::sync::Arc;
use uuid::Uuid;

pub use hub::{Hub, WsCtx};
pub use interest::Interest;
pub use session::Session;

/// What the loop does with a connection after the WebSocket layer handled it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing more to do now.
    Continue,
    /// The read budget of this turn is spent and more may wait: call
    /// [`Hub::readable`] again next turn (the socket is edge-triggered, no event
    /// would come).
    Again,
    /// A close frame is queued: close once the queue is flushed.
    Close,
    /// Drop the connection now (dead peer, I/O error).
    Drop,
}

/// Outcomes for several connections at once.
pub type Outcomes = Vec<(usize, Outcome)>;

/// A connection's bytes as this layer sees them: reads come from the socket, writes go
/// to the connection's outbound queue (in order with shared fan-out frames).
pub trait Transport: Read {
    /// Queues bytes only this connection sends.
    fn send(&mut self, bytes: Vec<u8>);
    /// Queues a frame shared with other sockets.
    fn send_shared(&mut self, frame: Arc<[u8]>);
    /// Bytes queued and not yet written.
    fn queued(&self) -> usize;
    /// Bytes queued behind the chunk being written (what the peer has not started to
    /// take).
    fn backlog(&self) -> usize;
    /// Drops everything queued (a client that stopped reading will not get it).
    fn discard(&mut self);
}

/// The loop's WebSocket connections, by connection key.
pub trait Sockets {
    /// Runs `f` on the session and transport of connection `k`, when it is a
    /// WebSocket; what `f` queues is flushed at the end of the loop's turn.
    fn with<R>(
        &mut self,
        k: usize,
        f: impl FnOnce(&mut Session, &mut dyn Transport) -> R,
    ) -> Option<R>;
    /// Keys of every WebSocket connection.
    fn keys(&self) -> Vec<usize>;
}

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
    pub history: Option<JoinHistory>,
}

/// The messages a join from a position missed.
pub struct JoinHistory {
    /// The first of them (at most a page).
    pub rows: Vec<Arc<Message>>,
    /// Whether more were missed.
    pub more: bool,
    /// The `last_seen_seq` it answers.
    pub after: i64,
    /// Set when messages after `last_seen_seq` were removed by retention: the oldest
    /// seq still stored.
    pub horizon: Option<i64>,
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
    /// The listener reconnected: back-fill every room before live delivery resumes.
    Resync,
    /// The listener LISTENs to more shards: joins waiting for them may proceed.
    ShardsReady,
}
