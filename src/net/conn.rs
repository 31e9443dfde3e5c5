//! A connection: its socket, buffers and protocol state (HTTP, WebSocket, or closing).

use crate::net::buffer::OutQueue;
use crate::ws::Session;
use mio::net::TcpStream;
use std::net::IpAddr;
use std::time::Instant;

/// An HTTP request waiting for a worker's answer; pipelined requests wait behind it.
pub struct InFlight {
    /// Request id the answer must carry.
    pub req: u64,
    /// Origin header, reflected for CORS.
    pub origin: Option<String>,
    /// Keep the connection after answering.
    pub keep_alive: bool,
    /// HEAD request: send no body.
    pub head_only: bool,
    /// Route label for metrics.
    pub route: &'static str,
    /// When the request was complete.
    pub started: Instant,
}

/// HTTP/1.1 state.
#[derive(Default)]
pub struct HttpConn {
    /// Bytes received and not yet parsed.
    pub inbuf: Vec<u8>,
    /// The request being served by a worker.
    pub in_flight: Option<InFlight>,
    /// When the first byte of the current request head arrived.
    pub head_started: Option<Instant>,
    /// The peer closed its side; answer what is in flight, then close.
    pub peer_closed: bool,
    /// Parsing stopped because the answers queued for the peer passed the bound.
    pub paused: bool,
}

/// Protocol state; the upgrade moves a connection from `Http` to `Ws`.
pub enum State {
    /// Serving HTTP requests.
    Http(HttpConn),
    /// An upgraded WebSocket.
    Ws(Box<Session>),
    /// Write side shut down; reading and discarding until EOF or the deadline, so the
    /// last response is not destroyed by a reset.
    Lingering(Instant),
}

/// One accepted socket.
pub struct Conn {
    /// The socket.
    pub sock: TcpStream,
    /// Peer address (rate limits, logs).
    pub peer: IpAddr,
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
    /// Last time bytes arrived.
    pub last_read: Instant,
    /// Last time the peer took bytes (or the queue was empty): a peer that takes
    /// nothing for the idle timeout while answers wait is dropped.
    pub last_write: Instant,
    /// Already queued in this turn's flush list.
    pub dirty: bool,
    /// Holds a slot of the per-address connection limit.
    pub counted: bool,
}

impl Conn {
    /// Ends the connection once its queued bytes are written (or after a grace period).
    pub fn close_soon(&mut self) {
        if !self.closing {
            self.closing = true;
            self.close_deadline = Some(Instant::now() + std::time::Duration::from_secs(5));
        }
    }

    /// A new HTTP connection.
    pub fn new(sock: TcpStream, peer: IpAddr) -> Conn {
        Conn {
            sock,
            peer,
            out: OutQueue::default(),
            state: State::Http(HttpConn::default()),
            writable_registered: false,
            closing: false,
            close_deadline: None,
            last_read: Instant::now(),
            last_write: Instant::now(),
            dirty: false,
            counted: false,
        }
    }
}
