//! Prometheus metrics: plain atomics updated on the hot path, rendered as text on scrape.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

mod push;
mod webhooks;
pub use push::PushMetrics;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
pub use webhooks::{EndpointMetrics, WebhookMetrics};

/// A fixed-bucket histogram.
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    /// Sum in micro-units (µs for seconds, or plain units ×1e6).
    sum_micro: AtomicU64,
}

impl Histogram {
    /// A histogram with the given upper bounds.
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micro: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_micro.fetch_add((v * 1e6) as u64, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (b, n) in self.bounds.iter().zip(&self.buckets) {
            cumulative += n.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_micro.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {count}");
    }
}

const LATENCY_BOUNDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
const BATCH_BOUNDS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0,
];

/// Every metric of a node.
pub struct Metrics {
    /// Requests by (route, status).
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    /// Request latency, seconds.
    pub request_seconds: Histogram,
    /// Open connections (HTTP + WebSocket).
    pub connections: AtomicI64,
    /// Open WebSocket connections.
    pub websockets: AtomicI64,
    /// Connections accepted since start.
    pub accepted: AtomicU64,
    /// Messages per write transaction.
    pub write_batch_size: Histogram,
    /// Duration of write transactions (first statement to commit), seconds.
    pub write_seconds: Histogram,
    /// Messages stored.
    pub messages_stored: AtomicU64,
    /// Write transactions that failed.
    pub write_failures: AtomicU64,
    /// Times a pool connection could not be had in time.
    pub pool_timeouts: AtomicU64,
    /// Jobs refused because a queue was full.
    pub jobs_rejected: AtomicU64,
    /// Notifications received by the listener.
    pub notifications: AtomicU64,
    /// Listener reconnects.
    pub listener_reconnects: AtomicU64,
    /// Commit-to-receipt lag of notifications, seconds.
    pub listener_lag_seconds: Histogram,
    /// Frames queued to WebSocket clients.
    pub ws_frames_out: AtomicU64,
    /// Messages delivered to sockets (a batch of n to m sockets counts n×m).
    pub deliveries: AtomicU64,
    /// Sockets closed as slow consumers.
    pub slow_consumer_closes: AtomicU64,
    /// The most bytes one WebSocket left unwritten after a turn's write (high-water mark).
    pub ws_backlog_peak: AtomicU64,
    /// Gap fetches triggered by out-of-sequence notifications or resyncs.
    pub gap_fetches: AtomicU64,
    /// History pages served from the cache.
    pub history_cache_hits: AtomicU64,
    /// History pages read from the messages table.
    pub history_cache_misses: AtomicU64,
    /// Panics caught in worker jobs (each answered 500 or `internal`); zero in health.
    pub job_panics: AtomicU64,
    /// HTTP answers with status 500.
    pub http_500: AtomicU64,
    /// Streamed answers (exports) whose client left before the end.
    pub streams_abandoned: AtomicU64,
    /// Accepts that failed for want of descriptors or memory (EMFILE, ENFILE, ENOBUFS,
    /// ENOMEM); accepting pauses after each.
    pub accept_errors: AtomicU64,
    /// Message notification shards the listener LISTENs to.
    pub listened_shards: AtomicU64,
    /// Reads a standby answered.
    pub replica_reads: AtomicU64,
    /// Reads sent to the primary because the standby had not replayed what they needed.
    pub replica_fallbacks: AtomicU64,
    /// Reads sent to the primary because no standby could answer.
    pub replica_errors: AtomicU64,
    /// Messages deleted by retention.
    pub retention_deleted: AtomicU64,
    /// Messages the search indexer added.
    pub search_indexed: AtomicU64,
    /// Stream entries not yet seen by the search indexer, at its last tick.
    pub search_backlog: AtomicU64,
    /// The product's identity provider: JWKS fetches, failures, keys held, tokens
    /// refused for an unknown `kid`, users created on first use.
    pub identity: IdentityMetrics,
    /// Webhook deliveries per endpoint.
    pub webhooks: WebhookMetrics,
    /// Web Push sends.
    pub push: std::sync::Arc<PushMetrics>,
}

/// Counters of the product's identity provider (`[auth.external]`).
#[derive(Default)]
pub struct IdentityMetrics {
    /// JWKS fetches attempted.
    pub jwks_fetches: AtomicU64,
    /// JWKS fetches that failed (the keys last fetched were kept).
    pub jwks_failures: AtomicU64,
    /// Keys held from the JWKS.
    pub jwks_keys: AtomicU64,
    /// Tokens refused because no key of theirs was known, even after a fetch.
    pub jwks_unknown_kid: AtomicU64,
    /// External users created on their first request.
    pub users_created: AtomicU64,
}

impl IdentityMetrics {
    fn render(&self, out: &mut String) {
        let series: [(&str, &str, &str, &AtomicU64); 5] = [
            (
                "chatd_jwks_fetches_total",
                "counter",
                "JWKS fetches attempted (start, refresh, unknown kid).",
                &self.jwks_fetches,
            ),
            (
                "chatd_jwks_fetch_failures_total",
                "counter",
                "JWKS fetches that failed; the keys last fetched were kept.",
                &self.jwks_failures,
            ),
            (
                "chatd_jwks_keys",
                "gauge",
                "Signing keys held from the JWKS.",
                &self.jwks_keys,
            ),
            (
                "chatd_jwks_unknown_kid_total",
                "counter",
                "External tokens refused because their kid was not among the keys, even after a fetch.",
                &self.jwks_unknown_kid,
            ),
            (
                "chatd_external_users_created_total",
                "counter",
                "Users created on the first request of an external token.",
                &self.users_created,
            ),
        ];
        for (name, kind, help, v) in series {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                v.load(Relaxed)
            );
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Mutex::new(BTreeMap::new()),
            request_seconds: Histogram::new(LATENCY_BOUNDS),
            connections: AtomicI64::new(0),
            websockets: AtomicI64::new(0),
            accepted: AtomicU64::new(0),
            write_batch_size: Histogram::new(BATCH_BOUNDS),
            write_seconds: Histogram::new(LATENCY_BOUNDS),
            messages_stored: AtomicU64::new(0),
            write_failures: AtomicU64::new(0),
            pool_timeouts: AtomicU64::new(0),
            jobs_rejected: AtomicU64::new(0),
            notifications: AtomicU64::new(0),
            listener_reconnects: AtomicU64::new(0),
            listener_lag_seconds: Histogram::new(LATENCY_BOUNDS),
            ws_frames_out: AtomicU64::new(0),
            deliveries: AtomicU64::new(0),
            slow_consumer_closes: AtomicU64::new(0),
            ws_backlog_peak: AtomicU64::new(0),
            gap_fetches: AtomicU64::new(0),
            history_cache_hits: AtomicU64::new(0),
            history_cache_misses: AtomicU64::new(0),
            job_panics: AtomicU64::new(0),
            http_500: AtomicU64::new(0),
            streams_abandoned: AtomicU64::new(0),
            accept_errors: AtomicU64::new(0),
            listened_shards: AtomicU64::new(0),
            replica_reads: AtomicU64::new(0),
            replica_fallbacks: AtomicU64::new(0),
            replica_errors: AtomicU64::new(0),
            retention_deleted: AtomicU64::new(0),
            search_indexed: AtomicU64::new(0),
            search_backlog: AtomicU64::new(0),
            identity: IdentityMetrics::default(),
            webhooks: WebhookMetrics::default(),
            push: std::sync::Arc::new(PushMetrics::default()),
        }
    }
}

/// Gauges that live elsewhere and are read at scrape time.
pub struct Snapshot {
    /// r2d2 connections open.
    pub pool_connections: u32,
    /// r2d2 connections idle.
    pub pool_idle: u32,
    /// Jobs waiting per queue: (queue name, length).
    pub queues: Vec<(String, usize)>,
    /// Per loop: (rooms with subscribers, joined sockets).
    pub loops: Vec<(usize, usize)>,
    /// Listener connected.
    pub listener_up: bool,
    /// Bytes held by the history cache.
    pub history_cache_bytes: usize,
}

impl Metrics {
    /// Counts one answered request.
    pub fn record_request(&self, route: &'static str, status: u16, seconds: f64) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((route, status)).or_insert(0) += 1;
        }
        self.request_seconds.observe(seconds);
    }

    /// Renders everything in the Prometheus text format.
    pub fn render(&self, snap: &Snapshot) -> String {
        let mut out = String::with_capacity(8192);
        out.push_str("# HELP chatd_http_requests_total HTTP requests answered, by route and status.\n# TYPE chatd_http_requests_total counter\n");
        if let Ok(m) = self.requests.lock() {
            for ((route, status), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "chatd_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        self.request_seconds.render(
            &mut out,
            "chatd_http_request_duration_seconds",
            "Time from a complete request to its response being queued.",
        );
        self.write_batch_size.render(
            &mut out,
            "chatd_write_batch_size",
            "Messages stored per write transaction.",
        );
        self.write_seconds.render(
            &mut out,
            "chatd_write_seconds",
            "Time a writer spends storing one batch (from its first statement to the commit).",
        );
        self.listener_lag_seconds.render(
            &mut out,
            "chatd_listener_lag_seconds",
            "Time from a batch's commit to its notification reaching this node.",
        );
        let gauges: [(&str, &str, i64); 10] = [
            (
                "chatd_search_backlog",
                "Stream entries not yet indexed for search, at the indexer's last tick (the node holding the indexer's lock).",
                self.search_backlog.load(Relaxed) as i64,
            ),
            (
                "chatd_listened_shards",
                "Message notification shards this node LISTENs to (those of its rooms).",
                self.listened_shards.load(Relaxed) as i64,
            ),
            (
                "chatd_connections",
                "Open connections (HTTP and WebSocket).",
                self.connections.load(Relaxed),
            ),
            (
                "chatd_websockets",
                "Open WebSocket connections.",
                self.websockets.load(Relaxed),
            ),
            (
                "chatd_ws_backlog_peak_bytes",
                "The most bytes one WebSocket left unwritten after a loop turn's write.",
                self.ws_backlog_peak.load(Relaxed) as i64,
            ),
            (
                "chatd_pool_connections",
                "Database pool connections open.",
                snap.pool_connections as i64,
            ),
            (
                "chatd_pool_idle",
                "Database pool connections idle.",
                snap.pool_idle as i64,
            ),
            (
                "chatd_pool_in_use",
                "Database pool connections in use.",
                snap.pool_connections as i64 - snap.pool_idle as i64,
            ),
            (
                "chatd_listener_up",
                "1 when the notification listener is connected.",
                snap.listener_up as i64,
            ),
            (
                "chatd_history_cache_bytes",
                "Bytes of serialised messages held by the history cache.",
                snap.history_cache_bytes as i64,
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        let counters: [(&str, &str, &AtomicU64); 23] = [
            (
                "chatd_search_indexed_total",
                "Messages this node's search indexer added to the index.",
                &self.search_indexed,
            ),
            (
                "chatd_retention_deleted_total",
                "Messages deleted because they outlived their room's retention period.",
                &self.retention_deleted,
            ),
            (
                "chatd_replica_reads_total",
                "Reads (history pages, catch-up, gap fetches, searches) a standby answered.",
                &self.replica_reads,
            ),
            (
                "chatd_replica_fallbacks_total",
                "Reads sent to the primary because the standby had not replayed what they need.",
                &self.replica_fallbacks,
            ),
            (
                "chatd_replica_errors_total",
                "Reads sent to the primary because no standby could answer.",
                &self.replica_errors,
            ),
            (
                "chatd_connections_accepted_total",
                "Connections accepted.",
                &self.accepted,
            ),
            (
                "chatd_messages_stored_total",
                "Messages committed.",
                &self.messages_stored,
            ),
            (
                "chatd_write_failures_total",
                "Write transactions that failed.",
                &self.write_failures,
            ),
            (
                "chatd_pool_timeouts_total",
                "Waits for a pool connection that timed out.",
                &self.pool_timeouts,
            ),
            (
                "chatd_jobs_rejected_total",
                "Jobs refused because their queue was full.",
                &self.jobs_rejected,
            ),
            (
                "chatd_notifications_total",
                "Notifications received by the listener.",
                &self.notifications,
            ),
            (
                "chatd_listener_reconnects_total",
                "Listener reconnections.",
                &self.listener_reconnects,
            ),
            (
                "chatd_ws_frames_out_total",
                "Frames queued to WebSocket clients.",
                &self.ws_frames_out,
            ),
            (
                "chatd_deliveries_total",
                "Messages delivered to sockets.",
                &self.deliveries,
            ),
            (
                "chatd_slow_consumer_closes_total",
                "Sockets closed with 1013 as slow consumers.",
                &self.slow_consumer_closes,
            ),
            (
                "chatd_gap_fetches_total",
                "Database fetches that filled a gap in a room's stream.",
                &self.gap_fetches,
            ),
            (
                "chatd_pool_waits_total",
                "Alias of chatd_pool_timeouts_total kept for dashboards.",
                &self.pool_timeouts,
            ),
            (
                "chatd_history_cache_hits_total",
                "History pages served from the cache.",
                &self.history_cache_hits,
            ),
            (
                "chatd_history_cache_misses_total",
                "History pages read from the messages table.",
                &self.history_cache_misses,
            ),
            (
                "chatd_job_panics_total",
                "Panics caught in database or password jobs.",
                &self.job_panics,
            ),
            (
                "chatd_http_500_total",
                "HTTP answers with status 500.",
                &self.http_500,
            ),
            (
                "chatd_streams_abandoned_total",
                "Streamed answers (exports) whose client left before the end.",
                &self.streams_abandoned,
            ),
            (
                "chatd_accept_errors_total",
                "Accepts refused for want of descriptors or memory (accepting pauses).",
                &self.accept_errors,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Relaxed)
            );
        }
        out.push_str(
            "# HELP chatd_queue_length Jobs waiting, by queue.\n# TYPE chatd_queue_length gauge\n",
        );
        for (q, n) in &snap.queues {
            let _ = writeln!(out, "chatd_queue_length{{queue=\"{q}\"}} {n}");
        }
        out.push_str("# HELP chatd_loop_rooms Rooms with joined sockets, by event loop.\n# TYPE chatd_loop_rooms gauge\n");
        for (i, (rooms, _)) in snap.loops.iter().enumerate() {
            let _ = writeln!(out, "chatd_loop_rooms{{loop=\"{i}\"}} {rooms}");
        }
        out.push_str("# HELP chatd_loop_subscriptions Socket-room subscriptions, by event loop.\n# TYPE chatd_loop_subscriptions gauge\n");
        for (i, (_, subs)) in snap.loops.iter().enumerate() {
            let _ = writeln!(out, "chatd_loop_subscriptions{{loop=\"{i}\"}} {subs}");
        }
        self.identity.render(&mut out);
        self.webhooks.render(&mut out);
        self.push.render(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_buckets() {
        let m = Metrics::default();
        m.record_request("GET /health", 200, 0.0002);
        m.record_request("GET /health", 200, 0.3);
        m.write_batch_size.observe(7.0);
        let snap = Snapshot {
            pool_connections: 3,
            pool_idle: 1,
            queues: vec![("db".into(), 2)],
            loops: vec![(1, 2)],
            listener_up: true,
            history_cache_bytes: 7,
        };
        let text = m.render(&snap);
        assert!(text.contains("chatd_http_requests_total{route=\"GET /health\",status=\"200\"} 2"));
        assert!(text.contains("chatd_http_request_duration_seconds_bucket{le=\"0.00025\"} 1"));
        assert!(text.contains("chatd_http_request_duration_seconds_bucket{le=\"0.5\"} 2"));
        assert!(text.contains("chatd_write_batch_size_bucket{le=\"10\"} 1"));
        assert!(text.contains("chatd_pool_in_use 2"));
        assert!(text.contains("chatd_queue_length{queue=\"db\"} 2"));
        for name in [
            "chatd_job_panics_total",
            "chatd_http_500_total",
            "chatd_accept_errors_total",
            "chatd_jwks_fetches_total",
            "chatd_jwks_keys",
        ] {
            assert!(text.contains(&format!("\n{name} 0\n")), "{name}");
        }
    }
}
