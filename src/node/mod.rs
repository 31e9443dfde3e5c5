//! The node: the one place that sees every part. `run` builds each role's handles
//! (what the loops, the HTTP routes, the WebSocket hubs, the listener and the presence
//! thread need) from the configuration, starts the threads, and returns a handle.

mod push;
mod status;

use crate::auth::Auth;
use crate::auth::external::External;
use crate::auth::password::Hasher;
use crate::auth::tokens::{TokenKeys, hex, random_secret};
use crate::auth::users;
use crate::base::budget::Budget;
use crate::base::config::{Config, Mode, mask_url_password};
use crate::base::metrics::Metrics;
use crate::chat::heads::Heads;
use crate::chat::history::HistoryCache;
use crate::chat::indexer::{self, IndexerThread};
use crate::chat::messages::Rules;
use crate::chat::presence::{self, Presence, PresenceThread};
use crate::chat::reads::{self, Reads, ReadsThread};
use crate::chat::retention::{self, RetentionThread};
use crate::chat::send::Sender;
use crate::http::context::{HttpCtx, Status};
use crate::http::driver::HttpDriver;
use crate::net::event_loop::{EventLoop, LoopCtx, WAKER};
use crate::net::handle::{LoopHandle, LoopMsg};
use crate::net::slots::Slots;
use crate::pg::listener::{self, Listener};
use crate::pg::pool::{JobQueue, Worker, build_pool};
use crate::pg::replica::Replicas;
use crate::pg::writer::Writers;
use crate::ws::profiles::ProfilesThread;
use crate::ws::{Hub, Interest, Mailbox, NodeSink, PgStore, Profiles, WsCtx};
use status::NodeStatus;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A running node.
pub struct ServerHandle {
    /// The bound address (the real port when 0 was asked).
    pub addr: SocketAddr,
    /// The metrics listener's address, when `[metrics] listen` is set.
    pub metrics_addr: Option<SocketAddr>,
    /// This node's id in presence rows.
    pub node_id: String,
    /// The node's metrics.
    pub metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
    writers: Writers,
    handles: Vec<Arc<LoopHandle>>,
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
    /// A setting every node of the cluster must share differs from the running nodes'.
    #[error("{0}")]
    Mismatch(String),
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
    /// Asked to stop (a signal) before the node was up.
    #[error("stopped before start-up completed")]
    Stopped,
}

/// How long start-up waits for a database that refuses connections (not yet up).
const STARTUP_WAIT: Duration = Duration::from_secs(30);

/// Whether a failed connection is worth retrying: nothing listens yet, the connection
/// was cut or timed out, or the server is still starting. Anything else (a wrong
/// password, an unknown host or database user, a refused option) is final.
fn retryable(e: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    if let Some(code) = e.code() {
        return *code == SqlState::CANNOT_CONNECT_NOW;
    }
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            return matches!(
                io.kind(),
                ConnectionRefused
                    | ConnectionReset
                    | ConnectionAborted
                    | TimedOut
                    | NotConnected
                    | UnexpectedEof
            );
        }
        src = s.source();
    }
    // The driver's own connect timeout carries no I/O error.
    e.to_string().contains("timed out")
}

/// A database error with its causes ("error connecting to server: Connection refused").
fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{}: {}", db.severity(), db.message());
    }
    let mut text = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        text.push_str(&format!(": {s}"));
        src = s.source();
    }
    text
}

/// Says what went wrong in words an operator can act on.
fn explain(cfg: &Config, e: &postgres::Error) -> StartError {
    use postgres::error::SqlState;
    let url = mask_url_password(&cfg.database.url);
    let code = e.code();
    if code == Some(&SqlState::INVALID_PASSWORD)
        || code == Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
    {
        let user = cfg
            .database
            .url
            .parse::<postgres::Config>()
            .ok()
            .and_then(|c| c.get_user().map(str::to_string))
            .unwrap_or_default();
        return StartError::Database(format!(
            "PostgreSQL refused user `{user}`: wrong user or password ({url}): {}",
            describe(e)
        ));
    }
    StartError::Database(format!("{} ({url})", describe(e)))
}

/// Applies the migrations (creating the database when missing); waits up to 30 s for a
/// database that is not up yet, unless `stop` is set meanwhile (SIGTERM).
pub fn migrate(cfg: &Config) -> Result<usize, StartError> {
    migrate_until(cfg, &AtomicBool::new(false))
}

fn migrate_until(cfg: &Config, stop: &AtomicBool) -> Result<usize, StartError> {
    let deadline = Instant::now() + STARTUP_WAIT;
    loop {
        let attempt = crate::pg::migrate::connect_creating(
            &cfg.database.url,
            cfg.database.connect_timeout_secs,
        )
        .and_then(|mut c| {
            let n = crate::pg::migrate::migrate(&mut c)?;
            crate::pg::migrate::room_name_keys(&mut c)?;
            Ok(n)
        });
        match attempt {
            Ok(n) => return Ok(n),
            Err(e) if Instant::now() < deadline && retryable(&e) => {
                log::warn!("database not reachable yet ({}); retrying", describe(&e));
                for _ in 0..10 {
                    if stop.load(Ordering::Acquire) {
                        return Err(StartError::Stopped);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            Err(e) => return Err(explain(cfg, &e)),
        }
    }
}

/// Fills in development-mode secrets, or refuses to run without real ones.
fn secrets(cfg: &mut Config) -> Result<(), StartError> {
    if !cfg.secrets_missing() {
        return Ok(());
    }
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
    if cfg.auth.access_secret.is_empty() {
        cfg.auth.access_secret = hex(&random_secret());
    }
    if cfg.auth.refresh_secret.is_empty() {
        cfg.auth.refresh_secret = hex(&random_secret());
    }
    Ok(())
}

/// Starts a node.
pub fn run(cfg: Config) -> Result<ServerHandle, StartError> {
    run_until(cfg, &AtomicBool::new(false))
}

/// Starts a node, giving up as soon as `stop` is set (a signal during start-up).
pub fn run_until(mut cfg: Config, stop: &AtomicBool) -> Result<ServerHandle, StartError> {
    // A Config built in code has not been through `load`.
    cfg.validate()
        .map_err(|e| StartError::Config(e.to_string()))?;
    let generated = cfg.secrets_missing();
    secrets(&mut cfg)?;
    migrate_until(&cfg, stop)?;
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
    let metrics = Arc::new(Metrics::default());
    let mut auth = Auth::new(
        keys,
        hasher,
        Duration::from_secs(cfg.auth.refresh_grace_secs),
    )
    .with_api_keys(crate::auth::keys::ApiKeys::from_config(&cfg.api_keys));
    let mut jwks = None;
    if cfg.auth.external.enabled() {
        let (external, thread) =
            External::new(&cfg.auth.external, metrics.clone()).map_err(StartError::Config)?;
        // Know the provider's keys before the first token (a failure keeps none: the
        // fetch thread tries again).
        if let Some(t) = &thread {
            t.jwks.fetch_now();
        }
        jwks = thread;
        auth = auth.with_external(external);
    }
    let auth = Arc::new(auth);
    let revoked_window = Duration::from_secs(cfg.auth.access_ttl_secs + 5);
    // Know every revocation before the first token is accepted.
    let revoked =
        crate::pg::migrate::connect_creating(&cfg.database.url, cfg.database.connect_timeout_secs)
            .and_then(|mut c| {
                let folded = users::fold_usernames(&mut c)?;
                if folded > 0 {
                    log::info!("{folded} usernames added to the user directory");
                }
                listener::revoked_since(&mut c, revoked_window)
            })
            .map_err(|e| StartError::Database(e.to_string()))?;
    auth.mark_revoked(&revoked);

    let listeners = bind(&cfg)?;
    let addr = listeners[0].local_addr()?;
    let scrape = bind_metrics(&cfg)?;
    let metrics_addr = scrape.as_ref().map(|l| l.local_addr()).transpose()?;
    if cfg.node_id.is_empty() {
        // Host and port, plus a per-start suffix: two processes never share an id.
        let host =
            std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "node".into());
        let suffix: u16 = rand::random();
        cfg.node_id = format!("{}-{}-{suffix:04x}", host.trim(), addr.port());
    }
    // Agreeing before claiming: a node that has claimed its id counts as running, and
    // nodes starting together must not see each other as running nodes of another count.
    agree_on_settings(&cfg, generated)?;
    claim_node_id(&cfg)?;
    let cfg = Arc::new(cfg);
    let stop = Arc::new(AtomicBool::new(false));
    let pool = build_pool(
        &cfg.database.url,
        cfg.database.pool_size,
        cfg.database.connect_timeout_secs,
    )
    .map_err(StartError::Config)?;
    let replicas = Replicas::new(
        &cfg.database.read_url,
        cfg.database.read_pool_size,
        &metrics,
    )
    .map_err(StartError::Config)?;
    let bound = cfg.database.max_queued_jobs;
    let mut others = Vec::new();
    let (db, h) = JobQueue::start(
        "db",
        cfg.database.db_workers,
        bound,
        &pool,
        replicas.as_ref(),
        &metrics,
        &stop,
    );
    others.extend(h);
    // The streaming workers read file chunks from a standby when it holds them.
    let (exports, h) = JobQueue::start(
        "export",
        cfg.database.export_workers,
        bound,
        &pool,
        replicas.as_ref(),
        &metrics,
        &stop,
    );
    others.extend(h);
    // Uploads on threads of their own: one waiting for the upload budget holds its
    // thread, never an export worker.
    let (uploadq, h) = JobQueue::start(
        "upload",
        cfg.files.upload_workers,
        bound,
        &pool,
        None,
        &metrics,
        &stop,
    );
    others.extend(h);
    let (authq, h) = JobQueue::start(
        "auth",
        cfg.auth_workers(),
        bound,
        &pool,
        None,
        &metrics,
        &stop,
    );
    others.extend(h);
    let (writers, h) = Writers::start(
        cfg.database.writers,
        cfg.database.write_batch_size,
        cfg.database.notify_shards,
        bound,
        &pool,
        &metrics,
        &stop,
    );
    others.extend(h);
    let heads = Heads::new(db.clone(), metrics.clone());
    let history = Arc::new(HistoryCache::new(cfg.http.history_cache_mb << 20));
    let (presence, presence_rx) = Presence::channel();
    let (reads, reads_rx) = Reads::channel();
    let interest = Arc::new(Interest::new(listeners.len(), cfg.database.notify_shards));
    let listener_up = Arc::new(AtomicBool::new(false));
    let db_ok = Arc::new(AtomicBool::new(false));

    let mut polls = Vec::new();
    let mut handles = Vec::new();
    let mut receivers = Vec::new();
    for _ in 0..listeners.len() {
        let poll = mio::Poll::new()?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = crossbeam_channel::unbounded();
        handles.push(Arc::new(LoopHandle::new(tx, waker)));
        receivers.push(rx);
        polls.push(poll);
    }
    let status = Arc::new(NodeStatus {
        pool: pool.clone(),
        queues: vec![db.clone(), authq.clone()],
        writers: writers.clone(),
        loops: handles.clone(),
        interest: interest.clone(),
        history: history.clone(),
        listener_up: listener_up.clone(),
        db_ok: db_ok.clone(),
        stopping: stop.clone(),
    });
    if let Some(l) = scrape {
        let (m, st, token) = (metrics.clone(), status.clone(), cfg.metrics.token.clone());
        let stop = stop.clone();
        others.push(
            std::thread::Builder::new()
                .name("metrics".into())
                .spawn(move || {
                    crate::http::scrape::serve(l, token, || m.render(&st.snapshot()), stop)
                })?,
        );
    }
    // One count per user for both transports of the node.
    let per_user = Arc::new(crate::base::limits::PerUser::default());
    let vapid = push::vapid_key(&cfg)?;
    let http = Arc::new(HttpCtx {
        push_key: vapid
            .as_ref()
            .map(|k| crate::hooks::webpush::public_b64(k).into()),
        cfg: cfg.clone(),
        auth: auth.clone(),
        db: db.clone(),
        authq,
        sender: Sender::new(
            writers.clone(),
            reads.clone(),
            i64::from(cfg.notifications.room_mention_max_members),
        ),
        exports,
        uploadq,
        heads: heads.clone(),
        history: history.clone(),
        metrics: metrics.clone(),
        logins: Default::default(),
        uploads: Default::default(),
        upload_budget: Arc::new(Budget::new(
            cfg.files.upload_bytes_per_sec,
            cfg.files.max_bytes as u64,
        )),
        per_user: per_user.clone(),
        status,
        reads: reads.clone(),
    });
    let rules = Rules::from_config(&cfg.messages).with_notifications(&cfg.notifications);
    let store = PgStore {
        sender: Sender::new(
            writers.clone(),
            reads.clone(),
            i64::from(cfg.notifications.room_mention_max_members),
        ),
        db: db.clone(),
        heads,
        presence,
        reads,
        rules,
        rejoins: Default::default(),
    };
    let ws = Arc::new(WsCtx {
        cfg: cfg.websocket.clone(),
        metrics: metrics.clone(),
        store: Arc::new(store),
        interest: interest.clone(),
        rules,
        per_user,
    });
    let slots = Slots::new(
        cfg.server.max_connections,
        cfg.limits.per_peer_connections(),
        metrics.clone(),
    );
    // Timeouts are checked at a quarter of the shortest one, the request head's.
    let tick = Duration::from_millis((cfg.http.header_timeout_ms / 4).clamp(50, 250));
    let mut loops = Vec::new();
    let parts = polls.into_iter().zip(listeners).zip(receivers);
    for (idx, ((poll, listener), rx)) in parts.enumerate() {
        listener.set_nonblocking(true)?;
        let handle = handles[idx].clone();
        let hub = Hub::new(ws.clone(), idx, handle.clone());
        let driver = HttpDriver::new(http.clone(), handle.clone());
        let ctx = LoopCtx {
            metrics: metrics.clone(),
            slots: slots.clone(),
            tick,
        };
        let el = EventLoop::new(
            idx,
            poll,
            mio::net::TcpListener::from_std(listener),
            rx,
            handle,
            ctx,
            driver,
            hub,
        )?;
        loops.push(
            std::thread::Builder::new()
                .name(format!("loop-{idx}"))
                .spawn(move || el.run())?,
        );
    }
    let listener = Listener {
        url: cfg.database.url.clone(),
        connect_timeout: Duration::from_secs(cfg.database.connect_timeout_secs),
        revoked_window,
        stop: stop.clone(),
        metrics: metrics.clone(),
        shards: cfg.database.notify_shards,
    };
    let mailboxes: Vec<Arc<dyn Mailbox>> = handles
        .iter()
        .map(|h| h.clone() as Arc<dyn Mailbox>)
        .collect();
    let (profiles, profiles_rx) = Profiles::channel();
    let profiles_thread = ProfilesThread {
        db: db.clone(),
        loops: mailboxes.clone(),
        stop: stop.clone(),
    };
    let handle = profiles.clone();
    others.push(
        std::thread::Builder::new()
            .name("profiles".into())
            .spawn(move || crate::ws::profiles::run(profiles_thread, handle, profiles_rx))?,
    );
    let sink = Arc::new(NodeSink {
        loops: mailboxes,
        interest,
        history,
        auth,
        listener_up,
        profiles,
    });
    others.push(
        std::thread::Builder::new()
            .name("listener".into())
            .spawn(move || listener.run(sink))?,
    );
    if let Some(t) = jwks {
        let stop = stop.clone();
        others.push(
            std::thread::Builder::new()
                .name("jwks".into())
                .spawn(move || t.jwks.run(t.rx, stop))?,
        );
    }
    let presence_thread = PresenceThread {
        node_id: cfg.node_id.clone(),
        heartbeat: Duration::from_secs(cfg.presence.heartbeat_secs),
        node_timeout: Duration::from_secs(cfg.presence.node_timeout_secs),
        stop: stop.clone(),
        db_ok,
    };
    let worker = Worker::new(pool.clone(), metrics.clone());
    others.push(
        std::thread::Builder::new()
            .name("presence".into())
            .spawn(move || presence::run(presence_thread, presence_rx, worker))?,
    );
    let reads_thread = ReadsThread {
        receipts_max_members: cfg.rooms.receipts_max_members,
        window: Duration::from_millis(cfg.rooms.receipt_window_ms),
        stop: stop.clone(),
    };
    let worker = Worker::new(pool.clone(), metrics.clone());
    others.push(
        std::thread::Builder::new()
            .name("reads".into())
            .spawn(move || reads::run(reads_thread, reads_rx, worker))?,
    );
    let indexer_thread = IndexerThread {
        cfg: cfg.messages.clone(),
        pool: pool.clone(),
        metrics: metrics.clone(),
        stop: stop.clone(),
    };
    others.push(
        std::thread::Builder::new()
            .name("indexer".into())
            .spawn(move || indexer::run(indexer_thread))?,
    );
    others.extend(start_webhooks(&cfg, &pool, &metrics, &stop)?);
    others.extend(push::start(&cfg, vapid, &metrics, &stop)?);
    let erase_thread = crate::chat::erase::EraseThread {
        pool: pool.clone(),
        stop: stop.clone(),
        every: Duration::from_secs(1),
        pause: Duration::from_millis(cfg.retention.pause_ms),
    };
    others.push(
        std::thread::Builder::new()
            .name("erase".into())
            .spawn(move || crate::chat::erase::run(erase_thread))?,
    );
    let sweep_thread = crate::chat::files::sweep::SweepThread {
        ttl: cfg.files.unattached_ttl(),
        every: Duration::from_secs(cfg.files.sweep_interval_secs),
        pause: Duration::from_millis(cfg.retention.pause_ms),
        pool: pool.clone(),
        stop: stop.clone(),
    };
    others.push(
        std::thread::Builder::new()
            .name("files-sweep".into())
            .spawn(move || crate::chat::files::sweep::run(sweep_thread))?,
    );
    let retention_thread = RetentionThread {
        cfg: cfg.retention.clone(),
        pool,
        metrics: metrics.clone(),
        stop: stop.clone(),
    };
    others.push(
        std::thread::Builder::new()
            .name("retention".into())
            .spawn(move || retention::run(retention_thread))?,
    );
    log::info!(
        "chatd node {} listening on {addr} with {} event loops",
        cfg.node_id,
        handles.len()
    );
    Ok(ServerHandle {
        addr,
        metrics_addr,
        node_id: cfg.node_id.clone(),
        metrics,
        stop,
        writers,
        handles,
        loops,
        others,
        stopped: false,
    })
}

/// Refuses to start under the id of a node that is running (its heartbeat is fresh).
fn claim_node_id(cfg: &Config) -> Result<(), StartError> {
    let fresh = Duration::from_secs(cfg.presence.heartbeat_secs * 2);
    let mut c =
        crate::pg::migrate::connect_creating(&cfg.database.url, cfg.database.connect_timeout_secs)
            .map_err(|e| explain(cfg, &e))?;
    match presence::claim_node(&mut c, &cfg.node_id, fresh) {
        Ok(true) => Ok(()),
        Ok(false) => Err(StartError::Config(format!(
            "node id `{}` is in use by a running node (its heartbeat is under {} s old): \
             give each node its own CHATD_NODE_ID / node_id, or leave it empty",
            cfg.node_id,
            fresh.as_secs()
        ))),
        Err(e) => Err(explain(cfg, &e)),
    }
}

/// Records the settings every node of the cluster must share (`base::shared`), or
/// refuses to start, naming the setting, when running nodes use another value (they
/// would run another policy on the same data, or not hear this node's messages).
/// Records the configured webhook endpoints and starts a dispatcher per endpoint.
fn start_webhooks(
    cfg: &Config,
    pool: &crate::pg::pool::Pool,
    metrics: &Arc<Metrics>,
    stop: &Arc<AtomicBool>,
) -> Result<Vec<JoinHandle<()>>, StartError> {
    let mut c = pool
        .get()
        .map_err(|e| StartError::Config(format!("webhooks: {e}")))?;
    crate::hooks::dead::sync_endpoints(&mut *c, &cfg.webhooks)
        .map_err(|e| StartError::Config(format!("webhooks: {e}")))?;
    let mut threads = Vec::new();
    for (i, hook) in cfg.webhooks.iter().enumerate() {
        let t = crate::hooks::dispatch::DispatchThread {
            hook: hook.clone(),
            db_url: cfg.database.url.clone(),
            connect_timeout: Duration::from_secs(cfg.database.connect_timeout_secs),
            metrics: metrics.webhooks.endpoint(hook.id()),
            stop: stop.clone(),
        };
        threads.push(
            std::thread::Builder::new()
                .name(format!("webhooks-{i}"))
                .spawn(move || crate::hooks::dispatch::run(t))?,
        );
    }
    Ok(threads)
}

fn agree_on_settings(cfg: &Config, generated: bool) -> Result<(), StartError> {
    let mut c =
        crate::pg::migrate::connect_creating(&cfg.database.url, cfg.database.connect_timeout_secs)
            .map_err(|e| explain(cfg, &e))?;
    let alive = Duration::from_secs(cfg.presence.node_timeout_secs);
    let shared = crate::base::shared::shared(cfg, generated);
    match crate::pg::migrate::agree(&mut c, &shared, &cfg.node_id, alive) {
        Ok(Ok(changed)) => {
            for (s, old) in changed {
                if s.secret {
                    log::info!("{} changed for the cluster (no node was running)", s.key);
                } else {
                    log::info!(
                        "{} changed for the cluster from {old} to {} (no node was running)",
                        s.key,
                        s.value
                    );
                }
            }
            Ok(())
        }
        Ok(Err((s, theirs))) => {
            let what = if s.secret {
                format!(
                    "{} differs from the running nodes' (compared by fingerprint)",
                    s.key
                )
            } else {
                format!("{} is {} but running nodes use {theirs}", s.key, s.value)
            };
            Err(StartError::Mismatch(format!(
                "{what}: every node of a cluster uses the same value; to change it, stop \
                 every node, then start them with the new one (docs/OPERATIONS.md 3.14)"
            )))
        }
        Err(e) => Err(explain(cfg, &e)),
    }
}

/// Opens one SO_REUSEPORT listener per event loop on the same address, so the kernel
/// spreads new connections over the loops without a shared accept lock. Refuses a port
/// another process serves (SO_REUSEPORT would silently split its traffic with us)
/// unless `server.shared_port` asks for exactly that.
fn bind(cfg: &Config) -> Result<Vec<TcpListener>, StartError> {
    let ip: std::net::IpAddr = cfg
        .server
        .listen
        .parse()
        .map_err(|_| StartError::Config("server.listen: not an IP address".into()))?;
    let mut addr = SocketAddr::new(ip, cfg.server.port);
    let bind_error = |source| StartError::Bind {
        addr: addr.to_string(),
        source,
    };
    if cfg.server.port != 0 && !cfg.server.shared_port {
        // Without SO_REUSEPORT this bind fails while anyone listens on the port.
        listener(addr, false).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                StartError::Config(format!(
                    "port {} is already served by another process (another chatd?); \
                     set server.shared_port = true only to hand a port over between two \
                     chatd processes",
                    addr.port()
                ))
            } else {
                bind_error(e)
            }
        })?;
    }
    let mut out = Vec::new();
    if !cfg.server.reuse_port {
        let shared = listener(addr, cfg.server.shared_port).map_err(bind_error)?;
        for _ in 1..cfg.event_loops() {
            out.push(shared.try_clone()?);
        }
        out.push(shared);
        return Ok(out);
    }
    for _ in 0..cfg.event_loops() {
        let l = listener(addr, true).map_err(|source| StartError::Bind {
            addr: addr.to_string(),
            source,
        })?;
        addr = l.local_addr()?;
        out.push(l);
    }
    Ok(out)
}

/// The metrics listener, when `[metrics] listen` names one.
fn bind_metrics(cfg: &Config) -> Result<Option<TcpListener>, StartError> {
    if cfg.metrics.listen.is_empty() {
        return Ok(None);
    }
    let addr: SocketAddr = cfg
        .metrics
        .listen
        .parse()
        .map_err(|_| StartError::Config("metrics.listen: not an address and port".into()))?;
    TcpListener::bind(addr)
        .map(Some)
        .map_err(|source| StartError::Bind {
            addr: format!("{addr} (metrics.listen)"),
            source,
        })
}

fn listener(addr: SocketAddr, reuse_port: bool) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(reuse_port)?;
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
        self.stop.store(true, Ordering::Release);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.writers.in_flight() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        for l in &self.handles {
            l.send(LoopMsg::Shutdown);
        }
        for h in self.loops.drain(..) {
            let _ = h.join();
        }
        for h in self.others.drain(..) {
            let _ = h.join();
        }
        log::info!("node {} stopped", self.node_id);
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
