//! Web Push counters (the node's senders) and the push outbox's size.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// What this node's push senders did.
#[derive(Default)]
pub struct PushMetrics {
    /// Pushes the push service accepted (2xx).
    pub sent: AtomicU64,
    /// Attempts that failed (5xx, 429, other refusals, a timeout, a connection error).
    pub failed: AtomicU64,
    /// Pushes given up (older than `push.max_age_hours`, or refused for good).
    pub dropped: AtomicU64,
    /// Subscriptions removed because the push service said they are gone (404/410).
    pub removed_gone: AtomicU64,
    /// Subscriptions removed because their host resolved to a refused address.
    pub removed_refused: AtomicU64,
    /// Pushes waiting in the outbox (the whole cluster's), at the last look.
    pub pending: AtomicU64,
}

impl PushMetrics {
    /// Appends the series in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let series: [(&str, &str, &str, &AtomicU64); 4] = [
            (
                "chatd_push_sent_total",
                "counter",
                "Web Push requests the push service accepted (2xx).",
                &self.sent,
            ),
            (
                "chatd_push_failed_total",
                "counter",
                "Web Push attempts that failed (5xx, 429, a timeout, a connection error, another refusal).",
                &self.failed,
            ),
            (
                "chatd_push_dropped_total",
                "counter",
                "Web Pushes given up: not accepted within push.max_age_hours, or refused for good.",
                &self.dropped,
            ),
            (
                "chatd_push_pending",
                "gauge",
                "Web Pushes waiting in the outbox (the whole cluster), at the sender's last look.",
                &self.pending,
            ),
        ];
        for (name, kind, help, v) in series {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                v.load(Relaxed)
            );
        }
        let name = "chatd_push_subscriptions_removed_total";
        let _ = writeln!(
            out,
            "# HELP {name} Push subscriptions removed: gone (404/410) or refused (the host resolved to a private address).\n# TYPE {name} counter\n{name}{{reason=\"gone\"}} {}\n{name}{{reason=\"refused\"}} {}",
            self.removed_gone.load(Relaxed),
            self.removed_refused.load(Relaxed)
        );
    }
}
