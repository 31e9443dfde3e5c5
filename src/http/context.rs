//! What the HTTP routes need from the node, and how a worker's answer finds its way
//! back to the connection that asked.

use crate::auth::Auth;
use crate::base::config::Config;
use crate::base::error::ApiError;
use crate::base::limits::Windows;
use crate::base::metrics::{Metrics, Snapshot};
use crate::chat::heads::Heads;
use crate::chat::history::HistoryCache;
use crate::chat::reads::Reads;
use crate::http::response::Response;
use crate::pg::pool::JobQueue;
use crate::pg::writer::Writers;
use std::sync::Arc;

/// The node's health as the operational routes show it.
pub trait Status: Send + Sync {
    /// True when the node can serve: database reachable and listener connected.
    fn ready(&self) -> bool;
    /// Gauges read at scrape time.
    fn snapshot(&self) -> Snapshot;
}

/// What the HTTP routes need.
pub struct HttpCtx {
    /// Effective configuration.
    pub cfg: Arc<Config>,
    /// Token checks and account operations.
    pub auth: Arc<Auth>,
    /// Query workers.
    pub db: JobQueue,
    /// Password workers.
    pub authq: JobQueue,
    /// Message writers.
    pub writers: Writers,
    /// Batched membership checks.
    pub heads: Arc<Heads>,
    /// Each room's newest messages.
    pub history: Arc<HistoryCache>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Login attempts per address and per account.
    pub logins: Windows,
    /// Readiness and gauges.
    pub status: Arc<dyn Status>,
    /// The read-marks thread.
    pub reads: Reads,
}

/// How a worker's answer reaches the event loop that owns the connection.
pub trait Replies: Send + Sync {
    /// Delivers the answer to request `req` of connection `key`.
    fn reply(&self, key: usize, req: u64, resp: Response);
}

/// Where a request's answer goes: cheap to make; nothing is sent unless a worker takes
/// the request (answers given on the spot never involve it).
#[derive(Clone)]
pub struct ReplyTo {
    /// The loop.
    pub to: Arc<dyn Replies>,
    /// Connection slot.
    pub key: usize,
    /// Request id (guards against a reused slot or an answer already given).
    pub req: u64,
}

impl ReplyTo {
    /// Arms the answer on the thread that serves the request: from here on the client
    /// gets an answer, a 500 if the work panics.
    pub fn arm(self) -> Replier {
        Replier {
            to: self,
            sent: false,
        }
    }
}

/// An armed answer; dropped without answering (a panicking job), it answers 500 so
/// the client is never left hanging.
pub struct Replier {
    to: ReplyTo,
    sent: bool,
}

impl Replier {
    /// Delivers the answer.
    pub fn send(mut self, resp: Response) {
        self.deliver(resp);
    }

    fn deliver(&mut self, resp: Response) {
        self.sent = true;
        self.to.to.reply(self.to.key, self.to.req, resp);
    }
}

impl Drop for Replier {
    fn drop(&mut self) {
        if !self.sent {
            self.deliver(Response::from_error(&ApiError::Internal));
        }
    }
}
