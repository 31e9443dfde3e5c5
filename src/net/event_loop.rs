//! One event-loop thread: accepts on its own SO_REUSEPORT listener, owns its connections
//! outright, speaks HTTP/1.1 (through http::routes) and hands upgraded sockets to the
//! WebSocket hub, and never blocks: database work leaves as jobs and comes back as
//! `LoopMsg`s through the channel and the Waker.

use crate::base::config::Config;
use crate::base::error::ApiError;
use crate::base::limits::PerIp;
use crate::base::metrics::Metrics;
use crate::base::model::Identity;
use crate::http::context::{HttpCtx, ReplyTo};
use crate::http::parse::{self, Head, Limits, Method, ParseError};
use crate::http::response::Response;
use crate::http::routes::{self, Routed};
use crate::net::buffer::Flush;
use crate::net::conn::{Conn, InFlight, State};
use crate::net::handle::{LoopHandle, LoopMsg};
use crate::net::sockets::Table;
use crate::ws::{Hub, Outcome, Outcomes};
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
/// Answers queued for one HTTP connection before its further pipelined requests wait
/// (a client that pipelines and never reads cannot grow the node's memory).
const MAX_HTTP_QUEUED: usize = 256 * 1024;
/// Requests served from one connection's buffer per loop turn; the rest wait for the
/// next turn, after the other connections had theirs.
const HTTP_BUDGET: usize = 32;

/// What a loop needs from the node.
pub struct LoopCtx {
    /// Effective configuration.
    pub cfg: Arc<Config>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Open connections per address, shared by the node's loops.
    pub per_ip: Arc<PerIp>,
    /// What the HTTP routes need.
    pub http: Arc<HttpCtx>,
}

/// The state of one event-loop thread.
pub struct EventLoop {
    idx: usize,
    poll: Poll,
    listener: Option<TcpListener>,
    conns: Slab<Conn>,
    rx: Receiver<LoopMsg>,
    /// This loop's own handle: the address workers answer to.
    handle: Arc<LoopHandle>,
    ctx: LoopCtx,
    /// The WebSocket side.
    hub: Hub,
    limits: Limits,
    /// Connections with output queued during this turn.
    dirty: Vec<usize>,
    /// Connections with input left unread when their turn's budget ran out.
    again: Vec<usize>,
    /// Accepting is paused until then (EMFILE, connection limit).
    accept_paused_until: Option<Instant>,
    /// Request ids, unique within the loop.
    next_req: u64,
    stopping: Option<Instant>,
    last_sweep: Instant,
}

impl EventLoop {
    /// A loop over an already-bound listener.
    pub fn new(
        idx: usize,
        poll: Poll,
        mut listener: TcpListener,
        rx: Receiver<LoopMsg>,
        handle: Arc<LoopHandle>,
        ctx: LoopCtx,
        hub: Hub,
    ) -> io::Result<EventLoop> {
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let h = &ctx.cfg.http;
        let limits = Limits {
            max_header_bytes: h.max_header_bytes,
            max_headers: h.max_headers,
            max_body_bytes: h.max_body_bytes,
        };
        Ok(EventLoop {
            idx,
            poll,
            listener: Some(listener),
            conns: Slab::with_capacity(1024),
            rx,
            handle,
            ctx,
            hub,
            limits,
            dirty: Vec::new(),
            again: Vec::new(),
            accept_paused_until: None,
            next_req: 1,
            stopping: None,
            last_sweep: Instant::now(),
        })
    }

    /// The connection table as the WebSocket hub sees it.
    fn table(&mut self) -> (&mut Hub, Table<'_>) {
        (
            &mut self.hub,
            Table {
                conns: &mut self.conns,
                dirty: &mut self.dirty,
            },
        )
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
            let (hub, mut table) = self.table();
            hub.flush(&mut table);
            if self.last_sweep.elapsed() >= self.sweep_interval() {
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

    fn sweep_interval(&self) -> Duration {
        Duration::from_millis((self.ctx.cfg.http.header_timeout_ms / 4).clamp(50, 250))
    }

    fn poll_timeout(&self) -> Duration {
        // Work left from the last turn (a budget ran out, or a flush queued more).
        if !self.again.is_empty() || !self.dirty.is_empty() {
            return Duration::ZERO;
        }
        let t = self.sweep_interval();
        self.hub.deadline().map_or(t, |d| t.min(d))
    }

    fn drain_channel(&mut self) {
        self.handle.clear_pending();
        for _ in 0..MAX_MSGS_PER_TURN {
            match self.rx.try_recv() {
                Ok(LoopMsg::Http { key, req, resp }) => self.on_http_reply(key, req, resp),
                Ok(LoopMsg::Ws(ev)) => {
                    let (hub, mut table) = self.table();
                    let out = hub.on_event(ev, &mut table);
                    self.apply_all(out);
                }
                Ok(LoopMsg::Shutdown) => self.begin_shutdown(),
                Err(_) => return,
            }
        }
        // Left the rest for the next turn; make sure there is one.
        self.handle.rewake();
    }

    /// Does what the WebSocket layer asked for connection `k`.
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
        }
    }

    fn apply_all(&mut self, out: Outcomes) {
        for (k, o) in out {
            self.apply(k, o);
        }
    }

    fn accept(&mut self) {
        if self.accept_paused_until.is_some() {
            return;
        }
        let max = self.ctx.cfg.server.max_connections as i64;
        loop {
            if self.ctx.metrics.connections.load(Relaxed) >= max {
                // Leave the rest in the backlog; resume below 90 % (see `sweep`).
                self.accept_paused_until = Some(Instant::now() + Duration::from_millis(100));
                return;
            }
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
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
                    let limit = self.ctx.cfg.limits.connections_per_ip;
                    let counted = self.ctx.per_ip.acquire(addr.ip(), limit);
                    let conn = entry.insert(Conn::new(sock, addr.ip()));
                    conn.counted = counted;
                    self.ctx.metrics.connections.fetch_add(1, Relaxed);
                    self.ctx.metrics.accepted.fetch_add(1, Relaxed);
                    if !counted {
                        // Over the per-address limit: say so, then close.
                        let resp = Response::from_error(&ApiError::RateLimited(1));
                        conn.out.push_owned(resp.to_bytes(None, false, false));
                        conn.close_soon();
                        self.mark_dirty(key);
                        continue;
                    }
                    // Data may already be waiting (edge-triggered: no event would tell us).
                    self.on_readable(key);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_resource_exhausted(&e) => {
                    // Out of descriptors or memory: retrying now would spin. Pause.
                    self.ctx.metrics.accept_errors.fetch_add(1, Relaxed);
                    log::warn!("loop {}: accept paused: {e}", self.idx);
                    self.accept_paused_until = Some(Instant::now() + Duration::from_millis(100));
                    return;
                }
                Err(e) => log::debug!("accept: {e}"),
            }
        }
    }

    fn on_readable(&mut self, k: usize) {
        let Some(conn) = self.conns.get_mut(k) else {
            return;
        };
        match &conn.state {
            State::Http(_) => self.read_http(k),
            State::Ws(_) => {
                if conn.closing {
                    return;
                }
                let (hub, mut table) = self.table();
                let o = hub.readable(k, &mut table);
                self.apply(k, o);
            }
            State::Lingering(_) => {
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
        }
    }

    fn read_http(&mut self, k: usize) {
        let cap = self.limits.max_header_bytes + self.limits.max_body_bytes;
        let Some(conn) = self.conns.get_mut(k) else {
            return;
        };
        let State::Http(h) = &mut conn.state else {
            return;
        };
        let mut buf = [0u8; 16 * 1024];
        let mut eof = false;
        // Stop at `cap` buffered bytes: a pipelining client waits until we answered.
        while h.inbuf.len() < cap {
            match conn.sock.read(&mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    h.inbuf.extend_from_slice(&buf[..n]);
                    conn.last_read = Instant::now();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    eof = true;
                    h.inbuf.clear();
                    break;
                }
            }
        }
        if eof {
            h.peer_closed = true;
        }
        self.process_http(k);
    }

    /// Serves the complete requests in the buffer, in order, one at a time, while the
    /// answers queued stay under the bound and this turn's budget lasts.
    fn process_http(&mut self, k: usize) {
        for served in 0.. {
            let Some(conn) = self.conns.get_mut(k) else {
                return;
            };
            if conn.closing {
                return;
            }
            let queued = conn.out.len();
            let State::Http(h) = &mut conn.state else {
                return;
            };
            if h.in_flight.is_some() {
                return;
            }
            if queued >= MAX_HTTP_QUEUED && !h.inbuf.is_empty() {
                // Resumed by `flush` once the peer took its answers.
                h.paused = true;
                return;
            }
            if served == HTTP_BUDGET && !h.inbuf.is_empty() {
                return self.apply(k, Outcome::Again);
            }
            if h.inbuf.is_empty() {
                h.head_started = None;
                if h.peer_closed {
                    self.close_after_flush(k);
                }
                return;
            }
            let head = match parse::parse_head(&h.inbuf, &self.limits) {
                Ok(Some(head)) => head,
                Ok(None) => {
                    h.head_started.get_or_insert_with(Instant::now);
                    if h.peer_closed {
                        self.close_after_flush(k);
                    }
                    return;
                }
                Err(e) => {
                    h.inbuf = Vec::new();
                    let resp = parse_error_response(&e).closing();
                    self.respond(k, None, false, false, "invalid", Instant::now(), resp);
                    return;
                }
            };
            let total = head.head_len + head.body_len;
            if h.inbuf.len() < total {
                h.head_started.get_or_insert_with(Instant::now);
                if h.peer_closed {
                    self.close_after_flush(k);
                }
                return;
            }
            let peer = conn.peer;
            let body = h.inbuf[head.head_len..total].to_vec();
            h.inbuf.drain(..total);
            h.head_started = None;
            let req = self.next_req;
            self.next_req += 1;
            let started = Instant::now();
            let reply = ReplyTo {
                to: self.handle.clone(),
                key: k,
                req,
            };
            let (route, routed) = routes::dispatch(&self.ctx.http, &head, body, peer, &reply);
            let head_only = head.method == Method::Head;
            match routed {
                Routed::Now(resp) => self.respond(
                    k,
                    head.headers.origin.as_deref(),
                    head.keep_alive,
                    head_only,
                    route,
                    started,
                    resp,
                ),
                Routed::Pending => {
                    if let Some(Conn {
                        state: State::Http(h),
                        ..
                    }) = self.conns.get_mut(k)
                    {
                        h.in_flight = Some(InFlight {
                            req,
                            origin: head.headers.origin.clone(),
                            keep_alive: head.keep_alive,
                            head_only,
                            route,
                            started,
                        });
                    }
                    return;
                }
                Routed::Upgrade(who) => {
                    self.ctx
                        .metrics
                        .record_request(route, 101, started.elapsed().as_secs_f64());
                    return self.upgrade(k, &head, who, false);
                }
                Routed::UpgradeEcho => {
                    let nobody = Identity {
                        user_id: uuid::Uuid::nil(),
                        username: String::new(),
                        session_id: uuid::Uuid::nil(),
                    };
                    return self.upgrade(k, &head, nobody, true);
                }
            }
        }
    }

    /// Completes the upgrade: answers 101 and moves the connection to the WebSocket state.
    fn upgrade(&mut self, k: usize, head: &Head, who: Identity, echo: bool) {
        let Some(conn) = self.conns.get_mut(k) else {
            return;
        };
        let State::Http(h) = &mut conn.state else {
            return;
        };
        let leftover = std::mem::take(&mut h.inbuf);
        conn.out
            .push_owned(crate::http::upgrade::accept_response(head));
        conn.state = State::Ws(Box::new(self.hub.session(k, who, echo, leftover)));
        self.mark_dirty(k);
        self.on_readable(k);
    }

    fn on_http_reply(&mut self, k: usize, req: u64, resp: Response) {
        let Some(conn) = self.conns.get_mut(k) else {
            return;
        };
        let State::Http(h) = &mut conn.state else {
            return;
        };
        // A reply for a request this connection no longer waits for (slot reused,
        // or already answered with an error) is dropped.
        if h.in_flight.as_ref().map(|f| f.req) != Some(req) {
            return;
        }
        let Some(f) = h.in_flight.take() else { return };
        self.respond(
            k,
            f.origin.as_deref(),
            f.keep_alive,
            f.head_only,
            f.route,
            f.started,
            resp,
        );
        // Pipelined requests may be waiting, and reading may have paused at the cap.
        self.read_http(k);
    }

    /// Queues a response and records it.
    #[allow(clippy::too_many_arguments)]
    fn respond(
        &mut self,
        k: usize,
        origin: Option<&str>,
        keep_alive: bool,
        head_only: bool,
        route: &'static str,
        started: Instant,
        resp: Response,
    ) {
        self.ctx
            .metrics
            .record_request(route, resp.status, started.elapsed().as_secs_f64());
        if resp.status == 500 {
            self.ctx.metrics.http_500.fetch_add(1, Relaxed);
        }
        let Some(conn) = self.conns.get_mut(k) else {
            return;
        };
        let keep = keep_alive && !resp.close && self.stopping.is_none();
        let cors = crate::http::ops::cors_origin(&self.ctx.cfg, origin);
        conn.out.push_owned(resp.to_bytes(cors, keep, head_only));
        if !keep {
            conn.close_soon();
        }
        self.mark_dirty(k);
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
        conn.dirty = false;
        let before = conn.out.len();
        let result = conn.out.write_to(&mut conn.sock);
        if conn.out.len() < before || conn.out.is_empty() {
            conn.last_write = Instant::now();
        }
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
                if conn.closing {
                    self.start_linger(k);
                } else if let State::Ws(_) = conn.state {
                    // The queue drained: a socket paused for backpressure may read again.
                    let (hub, mut table) = self.table();
                    let o = hub.drained(k, &mut table);
                    self.apply(k, o);
                } else if let State::Http(h) = &mut conn.state
                    && std::mem::take(&mut h.paused)
                {
                    // The peer took its answers: serve the requests that waited.
                    self.read_http(k);
                }
            }
            Ok(Flush::Blocked) => {
                if matches!(conn.state, State::Ws(_)) && !conn.closing {
                    let (hub, mut table) = self.table();
                    let o = hub.backlogged(k, &mut table);
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
        if matches!(
            self.conns.get(k).map(|c| &c.state),
            None | Some(State::Lingering(_))
        ) {
            return;
        }
        self.before_close(k);
        let Some(conn) = self.conns.get_mut(k) else {
            return;
        };
        let _ = conn.sock.shutdown(std::net::Shutdown::Write);
        conn.state = State::Lingering(Instant::now() + LINGER);
        self.on_readable(k);
    }

    /// Removes a connection now.
    fn drop_conn(&mut self, k: usize) {
        if !self.conns.contains(k) {
            return;
        }
        self.before_close(k);
        if let Some(mut conn) = self.conns.try_remove(k) {
            let _ = self.poll.registry().deregister(&mut conn.sock);
            if conn.counted {
                self.ctx
                    .per_ip
                    .release(conn.peer, self.ctx.cfg.limits.connections_per_ip);
            }
            self.ctx.metrics.connections.fetch_sub(1, Relaxed);
        }
        self.maybe_resume_accept();
    }

    /// Protocol clean-up that must run once, whichever way a connection ends.
    fn before_close(&mut self, k: usize) {
        let Some(conn) = self.conns.get_mut(k) else {
            return;
        };
        if let State::Ws(session) = &mut conn.state {
            self.hub.closed(k, session);
            conn.state = State::Lingering(Instant::now() + LINGER);
        }
    }

    fn maybe_resume_accept(&mut self) {
        if let Some(until) = self.accept_paused_until {
            let max = self.ctx.cfg.server.max_connections as i64;
            let below = self.ctx.metrics.connections.load(Relaxed) < max * 9 / 10 || max < 10;
            if Instant::now() >= until && below {
                self.accept_paused_until = None;
                self.accept();
            }
        }
    }

    /// Timeouts: slow request heads, idle keep-alive, lingering closes, WebSocket pings.
    fn sweep(&mut self) {
        let now = Instant::now();
        self.last_sweep = now;
        let header_timeout = Duration::from_millis(self.ctx.cfg.http.header_timeout_ms);
        let idle_timeout = Duration::from_secs(self.ctx.cfg.http.idle_timeout_secs);
        let mut timed_out = Vec::new();
        let mut idle = Vec::new();
        for (k, conn) in self.conns.iter() {
            if conn.close_deadline.is_some_and(|t| now > t) {
                // Could not even flush its goodbye: the peer is gone or stalled.
                idle.push(k);
                continue;
            }
            match &conn.state {
                State::Http(h) => {
                    if !conn.out.is_empty() && now - conn.last_write > idle_timeout {
                        // Answers wait and the peer takes none of them.
                        idle.push(k);
                        continue;
                    }
                    if h.in_flight.is_some() || conn.closing {
                        continue;
                    }
                    if h.head_started.is_some_and(|t| now - t > header_timeout) {
                        timed_out.push(k);
                    } else if now - conn.last_read > idle_timeout && conn.out.is_empty() {
                        idle.push(k);
                    }
                }
                State::Lingering(deadline) => {
                    if now > *deadline {
                        idle.push(k);
                    }
                }
                State::Ws(_) => {}
            }
        }
        for k in timed_out {
            if let Some(Conn {
                state: State::Http(h),
                ..
            }) = self.conns.get_mut(k)
            {
                h.inbuf = Vec::new();
            }
            let resp = Response::error(408, "request_timeout", "Request head not received in time")
                .closing();
            self.respond(k, None, false, false, "invalid", now, resp);
        }
        for k in idle {
            self.drop_conn(k);
        }
        let (hub, mut table) = self.table();
        let out = hub.sweep(now, &mut table);
        self.apply_all(out);
        self.maybe_resume_accept();
    }

    fn begin_shutdown(&mut self) {
        if self.stopping.is_some() {
            return;
        }
        self.stopping = Some(Instant::now() + Duration::from_secs(5));
        if let Some(mut l) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut l);
        }
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for k in keys {
            let busy = match self.conns.get(k).map(|c| &c.state) {
                Some(State::Http(h)) => h.in_flight.is_some(),
                Some(State::Ws(_)) => {
                    let (hub, mut table) = self.table();
                    let o = hub.close(k, &mut table, 1001, "server shutting down");
                    self.apply(k, o);
                    continue;
                }
                _ => continue,
            };
            if !busy {
                self.close_after_flush(k);
            }
        }
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

fn parse_error_response(e: &ParseError) -> Response {
    let (status, code) = match e {
        ParseError::Malformed => (400, "bad_request"),
        ParseError::HeadersTooLarge => (431, "headers_too_large"),
        ParseError::BodyTooLarge => (413, "payload_too_large"),
        ParseError::LengthRequired => (411, "length_required"),
        ParseError::Version => (505, "http_version_not_supported"),
    };
    Response::error(status, code, &e.to_string())
}
