//! Hot standbys for reads (`database.read_url`).
//!
//! A standby replays the primary's WAL a little later, so what it answers may predate
//! what a client has already seen. Every read sent to one therefore states what it
//! needs, and the standby's answer is used only when it provably covers it:
//!
//! - a room's messages up to seq `need`: the statement that reads the rows also reads
//!   the room's `last_seq` in the same snapshot. A room's entries commit in seq order
//!   (the room row is locked from seq assignment to commit) and every change to a
//!   message (edit, deletion, reaction, reply) is an entry of its room committed with
//!   the change, so a standby whose `last_seq` has reached `need` holds every row and
//!   every change of the stream up to `need`: exactly what the primary would answer.
//! - a search over the caller's rooms: the primary's WAL position is read when the
//!   request starts and the standby must have replayed up to it.
//!
//! Otherwise (behind, unreachable, a query cancelled by recovery) the caller reads the
//! primary, and the metrics count how often.

use crate::base::metrics::Metrics;
use crate::pg::pool::{Pool, build_pool};
use postgres::{Client, Statement};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a standby that failed is left alone before it is tried again.
const BACKOFF: Duration = Duration::from_secs(5);
/// Seconds a worker waits for a standby connection (a dead one must not stall reads).
const CONNECT_TIMEOUT_SECS: u64 = 2;

/// The standbys and their health.
pub struct Replicas {
    pools: Vec<Pool>,
    down_until: Vec<Mutex<Option<Instant>>>,
    next: AtomicUsize,
    metrics: Arc<Metrics>,
}

/// Why a standby's answer was not used.
pub enum Miss {
    /// No standby is configured or reachable.
    Unavailable,
    /// The standby has not replayed what the read needs.
    Behind,
}

impl Replicas {
    /// Pools over the standby URLs (`size` connections each); `None` when there are none.
    pub fn new(
        urls: &[String],
        size: u32,
        metrics: &Arc<Metrics>,
    ) -> Result<Option<Arc<Replicas>>, String> {
        if urls.is_empty() {
            return Ok(None);
        }
        let pools = urls
            .iter()
            .map(|u| build_pool(u, size, CONNECT_TIMEOUT_SECS))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.replace("database.url", "database.read_url"))?;
        Ok(Some(Arc::new(Replicas {
            down_until: pools.iter().map(|_| Mutex::new(None)).collect(),
            pools,
            next: AtomicUsize::new(0),
            metrics: metrics.clone(),
        })))
    }

    /// The next healthy standby, round robin.
    fn pick(&self) -> Option<usize> {
        let n = self.pools.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        (0..n).map(|i| (start + i) % n).find(|&i| {
            self.down_until[i]
                .lock()
                .map(|d| d.is_none_or(|t| t <= now))
                .unwrap_or(true)
        })
    }

    fn mark_down(&self, i: usize) {
        if let Ok(mut d) = self.down_until[i].lock() {
            *d = Some(Instant::now() + BACKOFF);
        }
    }
}

/// A worker's standby connection and the statements prepared on it.
pub struct ReplicaConn {
    replicas: Arc<Replicas>,
    conn: Option<(usize, r2d2::PooledConnection<crate::pg::pool::Manager>)>,
    stmts: HashMap<&'static str, Statement>,
}

impl ReplicaConn {
    /// A worker's side of the standbys.
    pub fn new(replicas: Arc<Replicas>) -> ReplicaConn {
        ReplicaConn {
            replicas,
            conn: None,
            stmts: HashMap::new(),
        }
    }

    /// Runs `read` on a standby with `sql` prepared. `read` answers `None` when the
    /// standby has not replayed what is needed. Counts the outcome; on any failure the
    /// connection is dropped and the standby rested, and the caller reads the primary.
    pub fn read<T>(
        &mut self,
        sql: &'static str,
        read: impl FnOnce(&mut Client, &Statement) -> Result<Option<T>, postgres::Error>,
    ) -> Result<T, Miss> {
        let m = self.replicas.metrics.clone();
        let Some((i, client, stmt)) = self.connect(sql) else {
            m.replica_errors.fetch_add(1, Ordering::Relaxed);
            return Err(Miss::Unavailable);
        };
        match read(client, &stmt) {
            Ok(Some(v)) => {
                m.replica_reads.fetch_add(1, Ordering::Relaxed);
                Ok(v)
            }
            Ok(None) => {
                m.replica_fallbacks.fetch_add(1, Ordering::Relaxed);
                Err(Miss::Behind)
            }
            Err(e) => {
                log::warn!("standby read failed, reading the primary: {e}");
                m.replica_errors.fetch_add(1, Ordering::Relaxed);
                self.conn = None;
                self.replicas.mark_down(i);
                Err(Miss::Unavailable)
            }
        }
    }

    /// The connection (acquired from a healthy standby when missing) and `sql` on it.
    fn connect(&mut self, sql: &'static str) -> Option<(usize, &mut Client, Statement)> {
        if self.conn.as_ref().is_some_and(|(_, c)| c.is_closed()) {
            self.conn = None;
        }
        if self.conn.is_none() {
            self.stmts.clear();
            let i = self.replicas.pick()?;
            match self.replicas.pools[i].get() {
                Ok(c) => self.conn = Some((i, c)),
                Err(e) => {
                    log::warn!("standby {i} unreachable, reading the primary: {e}");
                    self.replicas.mark_down(i);
                    return None;
                }
            }
        }
        let i = self.conn.as_ref()?.0;
        if !self.stmts.contains_key(sql) {
            let prepared = self.conn.as_mut()?.1.prepare(sql);
            match prepared {
                Ok(s) => {
                    self.stmts.insert(sql, s);
                }
                Err(e) => {
                    log::warn!("standby {i} refused a statement, reading the primary: {e}");
                    self.conn = None;
                    self.replicas.mark_down(i);
                    return None;
                }
            }
        }
        let stmt = self.stmts.get(sql)?.clone();
        let (i, conn) = self.conn.as_mut()?;
        Some((*i, &mut **conn, stmt))
    }
}
