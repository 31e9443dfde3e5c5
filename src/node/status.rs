//! The node's health view: readiness and the gauges /metrics reads at scrape time.

use crate::base::metrics::Snapshot;
use crate::chat::history::HistoryCache;
use crate::http::context::Status;
use crate::net::handle::LoopHandle;
use crate::pg::pool::{JobQueue, Pool};
use crate::pg::writer::Writers;
use crate::ws::Interest;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Everything the health view reads.
pub struct NodeStatus {
    /// Database pool.
    pub pool: Pool,
    /// Query and password workers.
    pub queues: Vec<JobQueue>,
    /// Message writers.
    pub writers: Writers,
    /// The event loops.
    pub loops: Vec<Arc<LoopHandle>>,
    /// Per-loop rooms and subscriptions.
    pub interest: Arc<Interest>,
    /// History cache.
    pub history: Arc<HistoryCache>,
    /// The listener is connected.
    pub listener_up: Arc<AtomicBool>,
    /// The last heartbeat reached the database.
    pub db_ok: Arc<AtomicBool>,
    /// Shutdown began.
    pub stopping: Arc<AtomicBool>,
}

impl Status for NodeStatus {
    fn ready(&self) -> bool {
        self.listener_up.load(Ordering::Acquire)
            && self.db_ok.load(Ordering::Acquire)
            && !self.stopping.load(Ordering::Acquire)
    }

    fn snapshot(&self) -> Snapshot {
        let state = self.pool.state();
        let mut queues: Vec<(String, usize)> = self
            .queues
            .iter()
            .map(|q| (q.name().to_string(), q.len()))
            .collect();
        for (i, n) in self.writers.queue_lengths().into_iter().enumerate() {
            queues.push((format!("writer-{i}"), n));
        }
        for (i, l) in self.loops.iter().enumerate() {
            queues.push((format!("loop-{i}"), l.len()));
        }
        Snapshot {
            pool_connections: state.connections,
            pool_idle: state.idle_connections,
            queues,
            loops: self.interest.stats(),
            listener_up: self.listener_up.load(Ordering::Relaxed),
            history_cache_bytes: self.history.bytes(),
        }
    }
}
