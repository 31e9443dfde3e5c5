//! Webhook counters, one set per endpoint (labelled with its name).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// One endpoint's counters.
#[derive(Default)]
pub struct EndpointMetrics {
    /// The endpoint's name.
    pub name: String,
    /// Events delivered (a 2xx answer).
    pub delivered: AtomicU64,
    /// Attempts that failed (to be retried, or the last one of a dead event).
    pub failed: AtomicU64,
    /// Events given up on.
    pub dead: AtomicU64,
    /// Age of the oldest event read but not delivered yet, milliseconds (0: none).
    pub lag_ms: AtomicU64,
    /// Stream entries not yet taken by the endpoint, at the last look.
    pub backlog: AtomicU64,
}

/// Every endpoint's counters.
#[derive(Default)]
pub struct WebhookMetrics {
    endpoints: Mutex<Vec<Arc<EndpointMetrics>>>,
}

impl WebhookMetrics {
    /// The counters of endpoint `name` (made on first use).
    pub fn endpoint(&self, name: &str) -> Arc<EndpointMetrics> {
        let Ok(mut all) = self.endpoints.lock() else {
            return Arc::new(EndpointMetrics::default());
        };
        if let Some(e) = all.iter().find(|e| e.name == name) {
            return e.clone();
        }
        let e = Arc::new(EndpointMetrics {
            name: name.to_string(),
            ..EndpointMetrics::default()
        });
        all.push(e.clone());
        e
    }

    /// Appends the series in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let Ok(all) = self.endpoints.lock() else {
            return;
        };
        type Get = fn(&EndpointMetrics) -> f64;
        let series: [(&str, &str, &str, Get); 5] = [
            (
                "chatd_webhook_delivered_total",
                "counter",
                "Webhook events delivered (answered 2xx).",
                |e| e.delivered.load(Relaxed) as f64,
            ),
            (
                "chatd_webhook_failed_total",
                "counter",
                "Webhook attempts that failed (a non-2xx answer, a timeout, a connection error).",
                |e| e.failed.load(Relaxed) as f64,
            ),
            (
                "chatd_webhook_dead_total",
                "counter",
                "Webhook events given up on (see GET /admin/webhooks/dead).",
                |e| e.dead.load(Relaxed) as f64,
            ),
            (
                "chatd_webhook_lag_seconds",
                "gauge",
                "Age of the oldest webhook event read and not yet delivered (0 when none waits).",
                |e| e.lag_ms.load(Relaxed) as f64 / 1000.0,
            ),
            (
                "chatd_webhook_backlog",
                "gauge",
                "Stream entries an endpoint has not taken yet, at the dispatcher's last look.",
                |e| e.backlog.load(Relaxed) as f64,
            ),
        ];
        for (name, kind, help, get) in series {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for e in all.iter() {
                let label = e.name.replace('\\', "\\\\").replace('"', "\\\"");
                let _ = writeln!(out, "{name}{{endpoint=\"{label}\"}} {}", get(e));
            }
        }
    }
}
