//! chatd: a real-time chat server whose only infrastructure is PostgreSQL.
//!
//! `run(Config)` starts a node (event loops, workers, writers, listener, presence) and
//! returns a handle; tests start nodes in-process on port 0.

pub mod auth;
pub mod chat;
pub mod config;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod limits;
pub mod logger;
pub mod metrics;
pub mod net;
pub mod pg;
pub mod shared;
pub mod ws;

use crate::auth::password::Hasher;
use crate::auth::tokens::{TokenKeys, random_secret};
use crate::config::{Config, Mode};
use crate::metrics::Metrics;
use crate::net::event_loop::{EventLoop, WAKER};
use crate::pg::pool::{JobQueue, Worker, build_pool};
use crate::pg::writer::Writers;
use crate::shared::{LoopHandle, LoopMsg, Shared};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A running node.
pub struct ServerHandle {
    /// The bound address (the real port when 0 was asked).
    pub addr: SocketAddr,
    /// Shared state, for tests and metrics.
    pub shared: Arc<Shared>,
    loops: Vec<JoinHandle<()>>,
    others: Vec<JoinHandle<()>>,
    stopped: bool,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration.
    #[error("{0}")]
    Config(String),
    /// The database could not be prepared.
    #[error("database: {0}")]
    Database(String),
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Threads or polls could not be created.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Applies the migrations (creating the database when missing), retrying for a while
/// when the database is not up yet.
pub fn migrate(cfg: &Config) -> Result<usize, StartError> {
    let deadline =
        Instant::now() + Duration::from_secs(cfg.database.connect_timeout_secs.max(10) * 3);
    loop {
        let attempt =
            pg::migrate::connect_creating(&cfg.database.url, cfg.database.connect_timeout_secs)
                .and_then(|mut c| pg::migrate::migrate(&mut c));
        match attempt {
            Ok(n) => return Ok(n),
            Err(e) if Instant::now() < deadline && e.code().is_none() => {
                log::warn!("database not reachable yet ({e}); retrying");
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(e) => {
                return Err(StartError::Database(format!(
                    "{e} ({})",
                    config::mask_url_password(&cfg.database.url)
                )));
            }
        }
    }
}

/// Starts a node.
pub fn run(mut cfg: Config) -> Result<ServerHandle, StartError> {
    if cfg.secrets_missing() {
        if cfg.mode == Mode::Production {
            return Err(StartError::Config(
                "production mode needs JWT_ACCESS_SECRET and JWT_REFRESH_SECRET".into(),
            ));
        }
        log::warn!("**************************************************************");
        log::warn!("DEVELOPMENT MODE: no JWT secrets configured; using random ones.");
        log::warn!("Tokens die with this process and other nodes reject them.");
        log::warn!("Set JWT_ACCESS_SECRET and JWT_REFRESH_SECRET (or auth.*_secret).");
        log::warn!("**************************************************************");
        let hex = |b: Vec<u8>| auth::tokens::hex(&b);
        if cfg.auth.access_secret.is_empty() {
            cfg.auth.access_secret = hex(random_secret());
        }
        if cfg.auth.refresh_secret.is_empty() {
            cfg.auth.refresh_secret = hex(random_secret());
        }
    }
    migrate(&cfg)?;
    let listeners = bind(&cfg)?;
    let addr = listeners[0].local_addr()?;
    if cfg.node_id.is_empty() {
        let host =
            std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "node".into());
        cfg.node_id = format!("{}-{}", host.trim(), addr.port());
    }
    let metrics = Arc::new(Metrics::default());
    let stop = Arc::new(AtomicBool::new(false));
    let pool = build_pool(
        &cfg.database.url,
        cfg.database.pool_size,
        cfg.database.connect_timeout_secs,
    )
    .map_err(StartError::Config)?;
    let bound = cfg.database.max_queued_jobs;
    let mut others = Vec::new();
    let (db, h) = JobQueue::start("db", cfg.database.db_workers, bound, &pool, &metrics, &stop);
    others.extend(h);
    let (authq, h) = JobQueue::start("auth", cfg.auth_workers(), bound, &pool, &metrics, &stop);
    others.extend(h);
    let (writers, h) = Writers::start(
        cfg.database.writers,
        cfg.database.write_batch_size,
        bound,
        &pool,
        &metrics,
        &stop,
    );
    others.extend(h);
    let keys = TokenKeys::new(
        cfg.auth.access_secret.as_bytes(),
        cfg.auth.refresh_secret.as_bytes(),
        cfg.auth.access_ttl_secs,
        cfg.auth.refresh_ttl_secs,
    )
    .map_err(StartError::Config)?;
    let hasher = Hasher::new(
        cfg.auth.argon2_memory_kib,
        cfg.auth.argon2_iterations,
        cfg.auth.argon2_parallelism,
    )
    .map_err(StartError::Config)?;

    let mut polls = Vec::new();
    let mut handles = Vec::new();
    let mut receivers = Vec::new();
    for _ in 0..listeners.len() {
        let poll = mio::Poll::new()?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = crossbeam_channel::unbounded();
        handles.push(LoopHandle::new(tx, waker));
        receivers.push(rx);
        polls.push(poll);
    }
    let (presence, presence_rx) = chat::presence::Presence::channel();
    let n_loops = listeners.len();
    let shared = Arc::new(Shared {
        node_id: cfg.node_id.clone(),
        keys,
        hasher,
        pool: pool.clone(),
        db,
        auth: authq,
        writers,
        loops: handles,
        metrics: metrics.clone(),
        listener_up: AtomicBool::new(false),
        revoked: RwLock::new(Default::default()),
        shutting_down: stop,
        loop_stats: (0..n_loops).map(|_| RwLock::new((0, 0))).collect(),
        interest: RwLock::new(Default::default()),
        presence,
        db_ok: AtomicBool::new(false),
        logins: Default::default(),
        per_ip: Default::default(),
        history: chat::history::HistoryCache::new(cfg.http.history_cache_mb << 20),
        heads: Default::default(),
        cfg,
    });
    let mut loops = Vec::new();
    for (idx, ((poll, listener), rx)) in polls.into_iter().zip(listeners).zip(receivers).enumerate()
    {
        listener.set_nonblocking(true)?;
        let el = EventLoop::new(
            idx,
            poll,
            mio::net::TcpListener::from_std(listener),
            rx,
            shared.clone(),
        )?;
        loops.push(
            std::thread::Builder::new()
                .name(format!("loop-{idx}"))
                .spawn(move || el.run())?,
        );
    }
    let s = shared.clone();
    others.push(
        std::thread::Builder::new()
            .name("listener".into())
            .spawn(move || pg::listener::run(s))?,
    );
    let s = shared.clone();
    let worker = Worker::new(pool, metrics);
    others.push(
        std::thread::Builder::new()
            .name("presence".into())
            .spawn(move || chat::presence::run(s, presence_rx, worker))?,
    );
    log::info!(
        "chatd node {} listening on {addr} with {n_loops} event loops",
        shared.node_id
    );
    Ok(ServerHandle {
        addr,
        shared,
        loops,
        others,
        stopped: false,
    })
}

/// Opens one SO_REUSEPORT listener per event loop on the same address, so the kernel
/// spreads new connections over the loops without a shared accept lock.
fn bind(cfg: &Config) -> Result<Vec<TcpListener>, StartError> {
    let ip: std::net::IpAddr = cfg
        .server
        .listen
        .parse()
        .map_err(|_| StartError::Config("server.listen: not an IP address".into()))?;
    let mut addr = SocketAddr::new(ip, cfg.server.port);
    let mut out = Vec::new();
    if !cfg.server.reuse_port {
        let shared = reuseport_listener(addr).map_err(|source| StartError::Bind {
            addr: addr.to_string(),
            source,
        })?;
        for _ in 1..cfg.event_loops() {
            out.push(shared.try_clone()?);
        }
        out.push(shared);
        return Ok(out);
    }
    for _ in 0..cfg.event_loops() {
        let l = reuseport_listener(addr).map_err(|source| StartError::Bind {
            addr: addr.to_string(),
            source,
        })?;
        addr = l.local_addr()?;
        out.push(l);
    }
    Ok(out)
}

fn reuseport_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

impl ServerHandle {
    /// Graceful shutdown: stop accepting, let queued writes commit and be acknowledged,
    /// close sockets with 1001, stop every thread.
    pub fn shutdown(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        self.shared.shutting_down.store(true, Ordering::Release);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.shared.writers.in_flight() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        for l in &self.shared.loops {
            l.send(LoopMsg::Shutdown);
        }
        for h in self.loops.drain(..) {
            let _ = h.join();
        }
        for h in self.others.drain(..) {
            let _ = h.join();
        }
        log::info!("node {} stopped", self.shared.node_id);
    }

    /// Base URL for HTTP clients (loopback when bound to all interfaces).
    pub fn url(&self) -> String {
        let ip = if self.addr.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            self.addr.ip().to_string()
        };
        format!("{ip}:{}", self.addr.port())
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}
