//! The r2d2 pool and the worker threads that run database and password jobs off the loops.

use crate::base::error::ApiError;
use crate::base::metrics::Metrics;
use crate::pg::replica::{ReplicaConn, Replicas};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use postgres::{Client, NoTls, Statement};
use r2d2_postgres::PostgresConnectionManager;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// The connection manager of every pool.
pub type Manager = PostgresConnectionManager<NoTls>;
/// The connection pool.
pub type Pool = r2d2::Pool<Manager>;

/// A unit of work run on a worker thread with access to a database connection.
pub type Job = Box<dyn FnOnce(&mut Worker) + Send>;

/// Builds the pool without opening connections up front, so a node starts (not ready)
/// while the database is down and recovers when it returns.
pub fn build_pool(url: &str, size: u32, timeout_secs: u64) -> Result<Pool, String> {
    let mut config: postgres::Config = url.parse().map_err(|e| format!("database.url: {e}"))?;
    config.connect_timeout(Duration::from_secs(timeout_secs));
    config.application_name("chatd");
    // A NOTICE says something about a statement's input (a word too long to index, a
    // search with no word in it): input clients control. The driver logs each one, so
    // they would let any client write to the log at will; warnings and errors still come.
    let quiet = "-c client_min_messages=warning";
    let options = match config.get_options() {
        Some(o) if !o.is_empty() => format!("{o} {quiet}"),
        _ => quiet.to_string(),
    };
    config.options(&options);
    let manager = PostgresConnectionManager::new(config, NoTls);
    Ok(r2d2::Pool::builder()
        .max_size(size)
        .min_idle(Some(0))
        // A checkout must not cost a round trip; broken connections are detected by
        // `is_closed` and by the query that fails on them.
        .test_on_check_out(false)
        .connection_timeout(Duration::from_secs(timeout_secs))
        .build_unchecked(manager))
}

/// A worker's state: it keeps one pooled connection while it is healthy, and the
/// statements it prepared on it (a hot query then costs one round trip, not two).
pub struct Worker {
    pool: Pool,
    conn: Option<r2d2::PooledConnection<Manager>>,
    stmts: HashMap<&'static str, Statement>,
    metrics: Arc<Metrics>,
    replica: Option<ReplicaConn>,
}

impl Worker {
    /// A worker over the pool.
    pub fn new(pool: Pool, metrics: Arc<Metrics>) -> Worker {
        Worker {
            pool,
            conn: None,
            stmts: HashMap::new(),
            metrics,
            replica: None,
        }
    }

    /// The same worker reading from `replicas` where a read allows it.
    pub fn with_replicas(mut self, replicas: Option<&Arc<Replicas>>) -> Worker {
        self.replica = replicas.map(|r| ReplicaConn::new(r.clone()));
        self
    }

    /// The worker's standby side, when standbys are configured.
    pub fn replica(&mut self) -> Option<&mut ReplicaConn> {
        self.replica.as_mut()
    }

    /// The worker's connection, (re)acquired when missing or broken.
    pub fn client(&mut self) -> Result<&mut Client, ApiError> {
        if self.conn.as_ref().is_some_and(|c| c.is_closed()) {
            self.conn = None;
        }
        if self.conn.is_none() {
            self.stmts.clear();
            match self.pool.get() {
                Ok(c) => self.conn = Some(c),
                Err(e) => {
                    self.metrics
                        .pool_timeouts
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    log::warn!("no database connection: {e}");
                    return Err(ApiError::Unavailable);
                }
            }
        }
        match self.conn.as_mut() {
            Some(c) => Ok(&mut **c),
            None => Err(ApiError::Unavailable),
        }
    }

    /// The connection and `sql` prepared on it (cached per connection).
    pub fn prepared(&mut self, sql: &'static str) -> Result<(&mut Client, Statement), ApiError> {
        self.client()?;
        let Some(conn) = self.conn.as_mut() else {
            return Err(ApiError::Unavailable);
        };
        let stmt = match self.stmts.get(sql) {
            Some(s) => s.clone(),
            None => {
                let s = conn.prepare(sql)?;
                self.stmts.insert(sql, s.clone());
                s
            }
        };
        Ok((&mut **conn, stmt))
    }

    /// Several statements at once, then the connection.
    pub fn prepared_all<const N: usize>(
        &mut self,
        sqls: [&'static str; N],
    ) -> Result<(&mut Client, [Statement; N]), ApiError> {
        let mut out = Vec::with_capacity(N);
        for sql in sqls {
            out.push(self.prepared(sql)?.1);
        }
        let stmts: [Statement; N] = out.try_into().map_err(|_| ApiError::Internal)?;
        Ok((self.client()?, stmts))
    }

    /// Metrics of the node.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

/// The next job; `None` once `stop` is set and the queue is empty (or closed).
pub fn next_job<T>(rx: &Receiver<T>, stop: &AtomicBool) -> Option<T> {
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(j) => return Some(j),
            Err(RecvTimeoutError::Timeout) => {
                if stop.load(std::sync::atomic::Ordering::Acquire) {
                    return None;
                }
            }
            Err(RecvTimeoutError::Disconnected) => return None,
        }
    }
}

/// A bounded job queue served by a set of threads.
#[derive(Clone)]
pub struct JobQueue {
    tx: Sender<Job>,
    metrics: Arc<Metrics>,
    name: &'static str,
}

impl JobQueue {
    /// Starts `threads` workers named `name-i`; returns the queue and their handles.
    pub fn start(
        name: &'static str,
        threads: usize,
        bound: usize,
        pool: &Pool,
        replicas: Option<&Arc<Replicas>>,
        metrics: &Arc<Metrics>,
        stop: &Arc<AtomicBool>,
    ) -> (JobQueue, Vec<std::thread::JoinHandle<()>>) {
        let (tx, rx) = crossbeam_channel::bounded::<Job>(bound);
        let handles = (0..threads)
            .map(|i| {
                let rx: Receiver<Job> = rx.clone();
                let mut worker = Worker::new(pool.clone(), metrics.clone()).with_replicas(replicas);
                let stop = stop.clone();
                std::thread::Builder::new()
                    .name(format!("{name}-{i}"))
                    .spawn(move || {
                        while let Some(job) = next_job(&rx, &stop) {
                            // A panicking job must not take the worker with it; its
                            // Replier answers 500 as it unwinds.
                            let run = std::panic::AssertUnwindSafe(|| job(&mut worker));
                            if std::panic::catch_unwind(run).is_err() {
                                worker
                                    .metrics
                                    .job_panics
                                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                log::error!("a {name} job panicked");
                            }
                        }
                    })
                    .unwrap_or_else(|e| panic!("cannot spawn {name} thread: {e}"))
            })
            .collect();
        (
            JobQueue {
                tx,
                metrics: metrics.clone(),
                name,
            },
            handles,
        )
    }

    /// Queues a job without blocking; `Unavailable` when the queue is full.
    pub fn submit(&self, job: Job) -> Result<(), ApiError> {
        match self.tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.metrics
                    .jobs_rejected
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                log::warn!("{} queue full", self.name);
                Err(ApiError::Unavailable)
            }
            Err(TrySendError::Disconnected(_)) => Err(ApiError::Unavailable),
        }
    }

    /// Jobs waiting.
    pub fn len(&self) -> usize {
        self.tx.len()
    }

    /// True when no job waits.
    pub fn is_empty(&self) -> bool {
        self.tx.is_empty()
    }

    /// The queue's name in metrics.
    pub fn name(&self) -> &'static str {
        self.name
    }
}
