//! A connection: its socket, its slot, its outbound queue and its protocol state (an
//! HTTP session, a WebSocket session, or lingering on its way out).

use crate::http::session::HttpSession;
use crate::net::buffer::OutQueue;
use crate::net::slots::Slot;
use crate::ws::Session;
use mio::net::TcpStream;
use std::time::{Duration, Instant};

/// How long a closing connection may take to write its last bytes.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Protocol state. A connection starts as `Http`; an upgrade the HTTP side returns moves
/// it, owned, to `Ws`; either ends `Lingering`.
pub enum State {
    /// Serving HTTP requests.
    Http(HttpSession),
    /// An upgraded WebSocket.
    Ws(Box<Session>),
    /// Write side shut down; reading and discarding until EOF or the deadline, so the
    /// last response is not destroyed by a reset.
    Lingering(Instant),
}

/// One accepted socket.
pub struct Conn {
    /// The socket (declared first: it is closed before the slot is given back).
    pub sock: TcpStream,
    /// Its connection slot, given back when the connection is dropped.
    pub slot: Slot,
    /// Bytes to send.
    pub out: OutQueue,
    /// Protocol state.
    pub state: State,
    /// WRITABLE is part of the registered interest.
    pub writable_registered: bool,
    /// Close once `out` is flushed.
    pub closing: bool,
    /// A closing connection that cannot flush by then is dropped.
    pub close_deadline: Option<Instant>,
    /// Last time the peer took bytes (or the queue was empty).
    pub last_write: Instant,
    /// Already queued in this turn's flush list.
    pub dirty: bool,
}

impl Conn {
    /// A new connection in its first protocol state.
    pub fn new(sock: TcpStream, slot: Slot, state: State) -> Conn {
        Conn {
            sock,
            slot,
            out: OutQueue::default(),
            state,
            writable_registered: false,
            closing: false,
            close_deadline: None,
            last_write: Instant::now(),
            dirty: false,
        }
    }

    /// Ends the connection once its queued bytes are written (or after a grace period).
    pub fn close_soon(&mut self) {
        if !self.closing {
            self.closing = true;
            self.close_deadline = Some(Instant::now() + CLOSE_GRACE);
        }
    }
}
