//! The interface between the event loop and the protocols it carries. A loop owns
//! sockets, buffers and readiness; each protocol (HTTP in http/, WebSocket in ws/) owns
//! the per-connection state of its connections and is driven through [`Protocol`]: the
//! loop calls it when a connection is readable, drained or backlogged, when a message
//! for it arrives, on timeouts, at shutdown and when a connection ends, and applies the
//! [`Outcome`] it answers. A protocol sees its connections as [`Sessions`], each a
//! session over a [`Transport`]; it never names the loop's types, and the loop never
//! calls a protocol method outside this trait.

use crate::base::model::Identity;
use std::io::Read;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the loop does with a connection after a protocol handled it.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing more to do now.
    Continue,
    /// This turn's read budget is spent and more may wait: call `readable` again next
    /// turn (the socket is edge-triggered, no event would come).
    Again,
    /// The last bytes are queued: close once the queue is flushed.
    Close,
    /// Drop the connection now (dead peer, I/O error, stalled reader).
    Drop,
    /// The connection changes protocol: the HTTP session is replaced by a WebSocket
    /// session opened from this value (the `101` is already queued).
    Upgrade(Box<Upgrade>),
}

/// Outcomes for several connections at once.
pub type Outcomes = Vec<(usize, Outcome)>;

/// What a WebSocket session starts from when an HTTP request upgrades its connection.
#[derive(Debug, PartialEq, Eq)]
pub struct Upgrade {
    /// Who authenticated the upgrade request.
    pub who: Identity,
    /// The conformance echo socket (no user, frames sent back as they came).
    pub echo: bool,
    /// Bytes the client sent right behind the upgrade request.
    pub leftover: Vec<u8>,
}

/// How the loop admitted a new connection; it holds a connection slot either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Within every limit.
    Admitted,
    /// Its address already holds `limits.connections_per_ip` connections: the protocol
    /// refuses it on its first turn.
    OverAddressLimit,
}

/// A connection's bytes as a protocol sees them: reads come from the socket, writes go
/// to the connection's outbound queue (in order with shared fan-out frames), which the
/// loop flushes at the end of the turn.
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
    /// The peer's address.
    fn peer(&self) -> IpAddr;
    /// Last time the peer took bytes, or found nothing queued.
    fn last_write(&self) -> Instant;
}

/// A loop's connections whose state is an `S`, by connection key.
pub trait Sessions<S> {
    /// Runs `f` on the session and transport of connection `k`, when its state is an
    /// `S`; what `f` queues is flushed at the end of the loop's turn.
    fn with<R>(&mut self, k: usize, f: impl FnOnce(&mut S, &mut dyn Transport) -> R) -> Option<R>;
    /// Keys of every connection whose state is an `S`.
    fn keys(&self) -> Vec<usize>;
}

/// One protocol's side of a loop. Every method that may change what happens to a
/// connection answers with [`Outcome`]s; statically dispatched (the loop holds each
/// side by its concrete type), so a frame costs no virtual call here.
pub trait Protocol {
    /// The state of one connection.
    type Session;
    /// What other threads send this side (answers of workers, live events).
    type Event;
    /// What a new session starts from.
    type Open;

    /// A session for connection `k`; the loop then calls [`Protocol::readable`], since
    /// bytes may already wait.
    fn open(&mut self, k: usize, from: Self::Open) -> Self::Session;
    /// The socket may have bytes: read and handle them, up to this turn's budget.
    fn readable(&mut self, k: usize, conns: &mut impl Sessions<Self::Session>) -> Outcome;
    /// The outbound queue was written out entirely.
    fn drained(&mut self, k: usize, conns: &mut impl Sessions<Self::Session>) -> Outcome;
    /// The end-of-turn write left bytes the socket could not take.
    fn backlogged(&mut self, k: usize, conns: &mut impl Sessions<Self::Session>) -> Outcome;
    /// A message from another thread.
    fn on_event(&mut self, ev: Self::Event, conns: &mut impl Sessions<Self::Session>) -> Outcomes;
    /// End of the loop's turn, before queues are written (fan-out).
    fn end_turn(&mut self, conns: &mut impl Sessions<Self::Session>);
    /// Timeouts and heartbeats, every few hundred milliseconds.
    fn sweep(&mut self, now: Instant, conns: &mut impl Sessions<Self::Session>) -> Outcomes;
    /// The node stops: wind every connection down.
    fn shutdown(&mut self, conns: &mut impl Sessions<Self::Session>) -> Outcomes;
    /// Connection `k` ends, however it ends; called once, with its state.
    fn closed(&mut self, k: usize, session: Self::Session);
    /// How long the loop may sleep before this side needs a turn.
    fn deadline(&self) -> Option<Duration>;
}
