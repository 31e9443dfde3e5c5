//! One event-loop thread: accepts on its own SO_REUSEPORT listener, owns its connections
//! outright and drives the protocols they speak through `base/session.rs`'s interface.
//! A connection starts as an HTTP session (http/), may be moved, owned, to a WebSocket
//! session (ws/) when the HTTP side returns an upgrade, and ends lingering. The loop
//! knows sockets, buffers, readiness, connection slots and its own closing and
//! lingering deadlines; no protocol. It never blocks: database work leaves as jobs and
//! comes back as `LoopMsg`s through the channel and the Waker.

use crate::base::metrics::Metrics;
use crate::base::session::{Outcome, Outcomes, Protocol, Upgrade};
use crate::http::driver::HttpDriver;
use crate::net::buffer::Flush;
use crate::net::conn::{Conn, State};
use crate::net::handle::{LoopHandle, LoopMsg};
use crate::net::slots::Slots;
use crate::net::sockets::Table;
use crate::ws::{Hub, LoopEvent};
use crossbeam_channel::Receiver;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// Token of the listening socket.
pub const LISTENER: Token = Token(usize::MAX - 1);
/// Token of the Waker.
pub const WAKER: Token = Token(usize::MAX - 2);
/// Most channel messages handled per turn before I/O gets its share again.
const MAX_MSGS_PER_TURN: usize = 8192;
/// How long a closing connection may linger to let its last response reach the peer.
const LINGER: Duration = Duration::from_secs(2);
/// After an accept error that retrying at once would repeat (out of descriptors or
/// memory), accepting waits this long.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// What a loop needs from the node.
pub struct LoopCtx {
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The node's connection slots, shared by its loops.
    pub slots: Arc<Slots>,
    /// How often timeouts are checked.
    pub tick: Duration,
}

/// Which side a connection's state belongs to.
#[derive(Clone, Copy)]
enum Side {
    Http,
    Ws,
    Lingering,
}

impl Side {
    fn of(state: &State) -> Side {
        match state {
            State::Http(_) => Side::Http,
            State::Ws(_) => Side::Ws,
            State::Lingering(_) => Side::Lingering,
        }
    }
}

/// The state of one event-loop thread.
pub struct EventLoop {
    idx: usize,
    poll: Poll,
    listener: Option<TcpListener>,
    conns: Slab<Conn>,
    rx: Receiver<LoopMsg>,
    /// This loop's own handle (what parks it on the slots).
    handle: Arc<LoopHandle>,
    ctx: LoopCtx,
    /// The HTTP side.
    http: HttpDriver,
    /// The WebSocket side.
    hub: Hub,
    /// Connections with output queued during this turn.
    dirty: Vec<usize>,
    /// Connections with input left unread when their turn's budget ran out.
    again: Vec<usize>,
    /// Parked on the slots: every slot was taken; a release sends `LoopMsg::Accept`.
    accept_parked: bool,
    /// Accepting resumes then, after an accept error (EMFILE and the like).
    accept_retry: Option<Instant>,
    stopping: Option<Instant>,
    last_sweep: Instant,
}

impl EventLoop {
    /// A loop over an already-bound listener.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        idx: usize,
        poll: Poll,
        mut listener: TcpListener,
        rx: Receiver<LoopMsg>,
        handle: Arc<LoopHandle>,
        ctx: LoopCtx,
        http: HttpDriver,
        hub: Hub,
    ) -> io::Result<EventLoop> {
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(EventLoop {
            idx,
            poll,
            listener: Some(listener),
            conns: Slab::with_capacity(1024),
            rx,
            handle,
            ctx,
            http,
            hub,
            dirty: Vec::new(),
            again: Vec::new(),
            accept_parked: false,
            accept_retry: None,
            stopping: None,
            last_sweep: Instant::now(),
        })
    }

    /// Runs until shutdown completes.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, Some(timeout))
                && e.kind() != io::ErrorKind::Interrupted
            {
                log::error!("loop {}: poll failed: {e}", self.idx);
                return;
            }
            // Connections whose budget ran out last turn go first: they waited longest.
            for k in std::mem::take(&mut self.again) {
                self.on_readable(k);
            }
            let mut woken = false;
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept(),
                    WAKER => woken = true,
                    Token(k) => {
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            self.on_readable(k);
                        }
                        if ev.is_writable() {
                            self.mark_dirty(k);
                        }
                    }
                }
            }
            if woken || !self.rx.is_empty() {
                self.drain_channel();
            }
            if self.accept_retry.is_some_and(|t| Instant::now() >= t) {
                self.accept_retry = None;
                self.accept();
            }
            let mut table = Table::new(&mut self.conns, &mut self.dirty);
            self.http.end_turn(&mut table);
            self.hub.end_turn(&mut table);
            if self.last_sweep.elapsed() >= self.ctx.tick {
                self.sweep();
            }
            self.flush_dirty();
            if let Some(deadline) = self.stopping
                && (self.conns.is_empty() || Instant::now() > deadline)
            {
                break;
            }
        }
        log::debug!("loop {} stopped", self.idx);
    }

    fn poll_timeout(&self) -> Duration {
        // Work left from the last turn (a budget ran out, or a flush queued more).
        if !self.again.is_empty() || !self.dirty.is_empty() {
            return Duration::ZERO;
        }
        let retry = self
            .accept_retry
            .map(|t| t.saturating_duration_since(Instant::now()));
        [self.http.deadline(), self.hub.deadline(), retry]
            .into_iter()
            .flatten()
            .fold(self.ctx.tick, Duration::min)
    }

    fn drain_channel(&mut self) {
        self.handle.clear_pending();
        if self.handle.take_shed() {
            // Live batches were dropped while this loop was behind: every room is read
            // again from its position before live delivery resumes (nothing skipped).
            let mut table = Table::new(&mut self.conns, &mut self.dirty);
            let out = self.hub.on_event(LoopEvent::Resync, &mut table);
            self.apply_all(out);
        }
        for _ in 0..MAX_MSGS_PER_TURN {
            let out = match self.rx.try_recv() {
                Ok(LoopMsg::Http(ev)) => {
                    let mut table = Table::new(&mut self.conns, &mut self.dirty);
                    self.http.on_event(ev, &mut table)
                }
                Ok(LoopMsg::Ws(ev)) => {
                    let mut table = Table::new(&mut self.conns, &mut self.dirty);
                    self.hub.on_event(ev, &mut table)
                }
                Ok(LoopMsg::Accept) => {
                    self.accept_parked = false;
                    self.accept();
                    continue;
                }
                Ok(LoopMsg::Shutdown) => {
                    self.begin_shutdown();
                    continue;
                }
                Err(_) => return,
            };
            self.apply_all(out);
        }
        // Left the rest for the next turn; make sure there is one.
        self.handle.rewake();
    }

    /// Does what a protocol asked for connection `k`.
    fn apply(&mut self, k: usize, o: Outcome) {
        match o {
            Outcome::Continue => {}
            Outcome::Again => {
                if !self.again.contains(&k) {
                    self.again.push(k);
                }
            }
            Outcome::Close => self.close_after_flush(k),
            Outcome::Drop => self.drop_conn(k),
            Outcome::Upgrade(up) => self.upgrade(k, *up),
        }
    }

    fn apply_all(&mut self, out: Outcomes) {
        for (k, o) in out {
            self.apply(k, o);
        }
    }

    fn side(&self, k: usize) -> Option<Side> {
        self.conns.get(k).map(|c| Side::of(&c.state))
    }

    fn accept(&mut self) {
        if self.accept_parked || self.accept_retry.is_some() {
            return;
        }
        loop {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            if self.ctx.slots.full() {
                // Leave the rest in the backlog until a release brings the count below
                // the resume level.
                if self.ctx.slots.park(&self.handle) {
                    self.accept_parked = true;
                    return;
                }
                continue;
            }
            match listener.accept() {
                Ok((mut sock, addr)) => {
                    let _ = sock.set_nodelay(true);
                    let entry = self.conns.vacant_entry();
                    let key = entry.key();
                    if let Err(e) =
                        self.poll
                            .registry()
                            .register(&mut sock, Token(key), Interest::READABLE)
                    {
                        log::warn!("register failed: {e}");
                        continue;
                    }
                    let (slot, admission) = self.ctx.slots.acquire(addr.ip());
                    let session = self.http.open(key, admission);
                    entry.insert(Conn::new(sock, slot, State::Http(session)));
                    self.ctx.metrics.accepted.fetch_add(1, Relaxed);
                    // Data may already be waiting (edge-triggered: no event would tell us).
                    self.on_readable(key);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_resource_exhausted(&e) => {
                    // Out of descriptors or memory: retrying now would spin. Pause.
                    self.ctx.metrics.accept_errors.fetch_add(1, Relaxed);
                    log::warn!("loop {}: accept paused: {e}", self.idx);
                    self.accept_retry = Some(Instant::now() + ACCEPT_RETRY);
                    return;
                }
                Err(e) => log::debug!("accept: {e}"),
            }
        }
    }

    fn on_readable(&mut self, k: usize) {
        let Some(conn) = self.conns.get(k) else {
            return;
        };
        let side = Side::of(&conn.state);
        if conn.closing && !matches!(side, Side::Lingering) {
            // Its last bytes are queued: what the peer sends now is drained at linger.
            return;
        }
        let mut table = Table::new(&mut self.conns, &mut self.dirty);
        let o = match side {
            Side::Http => self.http.readable(k, &mut table),
            Side::Ws => self.hub.readable(k, &mut table),
            Side::Lingering => return self.discard_input(k),
        };
        self.apply(k, o);
    }

    /// Reads and drops what a lingering connection's peer still sends, until EOF.
    fn discard_input(&mut self, k: usize) {
        let Some(conn) = self.conns.get_mut(k) else {
            return;
        };
        let mut buf = [0u8; 4096];
        loop {
            match conn.sock.read(&mut buf) {
                Ok(0) => return self.drop_conn(k),
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return self.drop_conn(k),
            }
        }
    }

    /// The HTTP side upgraded connection `k`: its state moves from the HTTP session to
    /// a WebSocket session opened from what the upgrade carries.
    fn upgrade(&mut self, k: usize, up: Upgrade) {
        let Some(conn) = self.conns.get_mut(k) else {
            return;
        };
        if !matches!(conn.state, State::Http(_)) {
            return;
        }
        let ws = State::Ws(Box::new(self.hub.open(k, up)));
        if let State::Http(http) = std::mem::replace(&mut conn.state, ws) {
            self.http.closed(k, http);
        }
        // The client may have sent frames right behind its request.
        self.on_readable(k);
    }

    fn close_after_flush(&mut self, k: usize) {
        if let Some(conn) = self.conns.get_mut(k) {
            conn.close_soon();
        }
        self.mark_dirty(k);
    }

    /// Schedules a flush of `k` at the end of this turn.
    fn mark_dirty(&mut self, k: usize) {
        if let Some(conn) = self.conns.get_mut(k)
            && !conn.dirty
        {
            conn.dirty = true;
            self.dirty.push(k);
        }
    }

    fn flush_dirty(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        for k in &dirty {
            self.flush(*k);
        }
        // Keep the allocation; a flush may have marked connections for the next turn.
        let mut dirty = dirty;
        dirty.clear();
        dirty.append(&mut self.dirty);
        self.dirty = dirty;
    }

    fn flush(&mut self, k: usize) {
        let Some(conn) = self.conns.get_mut(k) else {
            return;
        };
        let side = Side::of(&conn.state);
        conn.dirty = false;
        let before = conn.out.len();
        let result = conn.out.write_to(&mut conn.sock);
        if conn.out.len() < before || conn.out.is_empty() {
            conn.last_write = Instant::now();
        }
        let closing = conn.closing;
        match result {
            Ok(Flush::Done) => {
                if conn.writable_registered {
                    conn.writable_registered = false;
                    let _ = self.poll.registry().reregister(
                        &mut conn.sock,
                        Token(k),
                        Interest::READABLE,
                    );
                }
                if closing {
                    return self.start_linger(k);
                }
                // A connection paused for backpressure may read again.
                let mut table = Table::new(&mut self.conns, &mut self.dirty);
                let o = match side {
                    Side::Http => self.http.drained(k, &mut table),
                    Side::Ws => self.hub.drained(k, &mut table),
                    Side::Lingering => Outcome::Continue,
                };
                self.apply(k, o);
            }
            Ok(Flush::Blocked) => {
                if !closing {
                    let mut table = Table::new(&mut self.conns, &mut self.dirty);
                    let o = match side {
                        Side::Http => self.http.backlogged(k, &mut table),
                        Side::Ws => self.hub.backlogged(k, &mut table),
                        Side::Lingering => Outcome::Continue,
                    };
                    self.apply(k, o);
                }
                let Some(conn) = self.conns.get_mut(k) else {
                    return;
                };
                if !conn.writable_registered {
                    conn.writable_registered = true;
                    let _ = self.poll.registry().reregister(
                        &mut conn.sock,
                        Token(k),
                        Interest::READABLE | Interest::WRITABLE,
                    );
                }
            }
            Err(_) => self.drop_conn(k),
        }
    }

    /// Everything was sent and the connection should end: half-close, then drain the
    /// peer's remaining bytes for a moment so our last response is not reset away.
    fn start_linger(&mut self, k: usize) {
        if matches!(self.side(k), None | Some(Side::Lingering)) {
            return;
        }
        self.end_session(k);
        let Some(conn) = self.conns.get_mut(k) else {
            return;
        };
        let _ = conn.sock.shutdown(std::net::Shutdown::Write);
        self.on_readable(k);
    }

    /// Removes a connection now; dropping it gives its slot back.
    fn drop_conn(&mut self, k: usize) {
        if !self.conns.contains(k) {
            return;
        }
        self.end_session(k);
        if let Some(mut conn) = self.conns.try_remove(k) {
            let _ = self.poll.registry().deregister(&mut conn.sock);
        }
    }

    /// Hands a connection's session back to its protocol, once, whichever way the
    /// connection ends; the connection lingers from here on.
    fn end_session(&mut self, k: usize) {
        let Some(conn) = self.conns.get_mut(k) else {
            return;
        };
        if matches!(conn.state, State::Lingering(_)) {
            return;
        }
        match std::mem::replace(&mut conn.state, State::Lingering(Instant::now() + LINGER)) {
            State::Http(session) => self.http.closed(k, session),
            State::Ws(session) => self.hub.closed(k, *session),
            State::Lingering(_) => {}
        }
    }

    /// Timeouts: goodbyes that cannot be written, lingering closes, then each side's own
    /// (slow request heads, idle keep-alive, WebSocket pings).
    fn sweep(&mut self) {
        let now = Instant::now();
        self.last_sweep = now;
        let expired: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                // A closing connection that could not even flush its goodbye: the peer
                // is gone or stalled.
                c.close_deadline.is_some_and(|t| now > t)
                    || matches!(c.state, State::Lingering(t) if now > t)
            })
            .map(|(k, _)| k)
            .collect();
        for k in expired {
            self.drop_conn(k);
        }
        let mut table = Table::new(&mut self.conns, &mut self.dirty);
        let http = self.http.sweep(now, &mut table);
        let ws = self.hub.sweep(now, &mut table);
        self.apply_all(http);
        self.apply_all(ws);
    }

    fn begin_shutdown(&mut self) {
        if self.stopping.is_some() {
            return;
        }
        self.stopping = Some(Instant::now() + Duration::from_secs(5));
        if let Some(mut l) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut l);
        }
        let mut table = Table::new(&mut self.conns, &mut self.dirty);
        let http = self.http.shutdown(&mut table);
        let ws = self.hub.shutdown(&mut table);
        self.apply_all(http);
        self.apply_all(ws);
    }
}

fn is_resource_exhausted(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc_codes::EMFILE | libc_codes::ENFILE | libc_codes::ENOBUFS | libc_codes::ENOMEM)
    )
}

/// errno values (Linux) for descriptor and memory exhaustion.
mod libc_codes {
    pub const EMFILE: i32 = 24;
    pub const ENFILE: i32 = 23;
    pub const ENOBUFS: i32 = 105;
    pub const ENOMEM: i32 = 12;
}
