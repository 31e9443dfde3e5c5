//! WebSocket: handshake, frame codec, JSON events, and the per-socket session logic.

pub mod codec;
pub mod deliver;
pub mod events;
pub mod handshake;
pub mod join;
pub mod session;

use crate::auth::tokens::Identity;
use crate::chat::messages::Message;
use crate::error::ApiError;
use std::sync::Arc;
use std::time::Instant;
use tungstenite::protocol::WebSocketContext;
use uuid::Uuid;

/// One room subscription of a socket.
pub struct Sub {
    /// Room.
    pub room: Uuid,
    /// Last seq this socket was sent.
    pub delivered: i64,
    /// The join is being checked; nothing is delivered yet.
    pub joining: bool,
    /// A catch-up fetch is in flight for this socket.
    pub catching_up: bool,
    /// Id of the latest join request (a re-join supersedes the previous one).
    pub join_id: u64,
    /// This subscription counts in the presence table.
    pub present: bool,
    /// Last time a typing start was relayed, while typing.
    pub typing_since: Option<Instant>,
}

/// WebSocket state of a connection.
pub struct WsConn {
    /// tungstenite's protocol state (reading, control frames, close handshake).
    pub ctx: WebSocketContext,
    /// Who is connected.
    pub who: Identity,
    /// Socket id, unique within the loop: replies for a closed socket are recognised.
    pub id: u64,
    /// Room subscriptions.
    pub subs: Vec<Sub>,
    /// A ping is outstanding since then.
    pub ping_sent: Option<Instant>,
    /// Last ping round started.
    pub last_ping: Instant,
    /// Reading stopped because our outbound queue is too full (backpressure).
    pub paused: bool,
    /// Start of the current rate-limit window and events counted in it.
    pub window: (Instant, u32),
    /// Echo socket of the conformance endpoint: frames come back as they came.
    pub echo: bool,
}

impl WsConn {
    /// The subscription to `room`, if any.
    pub fn sub(&mut self, room: Uuid) -> Option<&mut Sub> {
        self.subs.iter_mut().find(|s| s.room == room)
    }
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
    /// History after `last_seen_seq` (when given), whether more was missed, and the
    /// `last_seen_seq` it answers.
    pub history: Option<(Vec<Arc<Message>>, bool, i64)>,
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
        /// Rows, ascending.
        result: Result<Vec<Arc<Message>>, ApiError>,
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
    /// A user lost membership: their sockets leave the room.
    Kick {
        /// Room.
        room: Uuid,
        /// User.
        user: Uuid,
    },
    /// Sessions were revoked: close their sockets.
    Revoke(Arc<Vec<Uuid>>),
    /// The listener reconnected: back-fill every room before live delivery resumes.
    Resync,
}
