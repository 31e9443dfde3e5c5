//! What the HTTP routes need from the node, and how a worker's answer finds its way
//! back to the connection that asked.

use crate::auth::Auth;
use crate::base::budget::Budget;
use crate::base::config::Config;
use crate::base::error::ApiError;
use crate::base::limits::{PerUser, Windows};
use crate::base::metrics::{Metrics, Snapshot};
use crate::base::model::Identity;
use crate::chat::heads::Heads;
use crate::chat::history::HistoryCache;
use crate::chat::reads::Reads;
use crate::chat::send::Sender;
use crate::http::parse::Head;
use crate::http::response::Response;
use crate::http::stream::BodyReader;
use crate::pg::pool::JobQueue;
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
    /// The send use case (the message writers behind it).
    pub sender: Sender,
    /// Export workers (streamed answers that last as long as their client reads).
    pub exports: JobQueue,
    /// Upload workers (`files.upload_workers`): each stores one upload as it arrives.
    pub uploadq: JobQueue,
    /// Batched membership checks.
    pub heads: Arc<Heads>,
    /// Each room's newest messages.
    pub history: Arc<HistoryCache>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Login attempts per address and per account.
    pub logins: Windows,
    /// Each user's uploads a minute (`files.uploads_per_minute`).
    pub uploads: Windows,
    /// The bytes a second all uploads of this node may write (`files.upload_bytes_per_sec`).
    pub upload_budget: Arc<Budget>,
    /// Each user's events a second, shared with the WebSocket side.
    pub per_user: Arc<PerUser>,
    /// Readiness and gauges.
    pub status: Arc<dyn Status>,
    /// The read-marks thread.
    pub reads: Reads,
    /// The VAPID public key (base64url point) browsers subscribe with; `None`: Web
    /// Push is off.
    pub push_key: Option<Arc<str>>,
}

/// What reaches a loop's HTTP side from other threads.
pub enum HttpEvent {
    /// A worker's answer to request `req` of connection `key`.
    Reply {
        /// Connection slot.
        key: usize,
        /// Request id (guards against a reused slot or an answer already given).
        req: u64,
        /// The answer.
        resp: Response,
    },
    /// A worker resolved the caller of WebSocket upgrade `req` of connection `key`:
    /// the loop answers 101 and hands the connection to ws/.
    Upgrade {
        /// Connection slot.
        key: usize,
        /// Request id (guards against a reused slot or an answer already given).
        req: u64,
        /// The caller.
        who: Identity,
        /// The upgrade request (its key makes the 101 answer).
        head: Box<Head>,
    },
    /// A worker answers request `req` of connection `key` with a streamed body: `resp`
    /// is the head (its body unused), `body` where the chunks come from
    /// (`http/stream.rs`).
    Stream {
        /// Connection slot.
        key: usize,
        /// Request id (guards against a reused slot or an answer already given).
        req: u64,
        /// Status and headers.
        resp: Response,
        /// The body's chunks.
        body: BodyReader,
    },
    /// Chunks of the streamed body of request `req` of connection `key` are ready, or
    /// its worker stopped.
    Body {
        /// Connection slot.
        key: usize,
        /// Request id.
        req: u64,
    },
    /// The worker of upload `req` of connection `key` took a chunk from a channel the
    /// loop found full (`http/intake.rs`): read the body on.
    Intake {
        /// Connection slot.
        key: usize,
        /// Request id.
        req: u64,
    },
}

/// How a worker's answer reaches the event loop that owns the connection.
pub trait Replies: Send + Sync {
    /// Posts an event to the loop's HTTP side and wakes the loop.
    fn post(&self, ev: HttpEvent);
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

    /// Completes a WebSocket upgrade whose caller a worker resolved.
    pub fn upgrade(mut self, who: Identity, head: Head) {
        self.sent = true;
        self.to.to.post(HttpEvent::Upgrade {
            key: self.to.key,
            req: self.to.req,
            who,
            head: Box::new(head),
        });
    }

    /// Answers with a streamed body whose chunks come through `body`.
    pub fn stream(mut self, resp: Response, body: BodyReader) {
        self.sent = true;
        self.to.to.post(HttpEvent::Stream {
            key: self.to.key,
            req: self.to.req,
            resp,
            body,
        });
    }

    fn deliver(&mut self, resp: Response) {
        self.sent = true;
        self.to.to.post(HttpEvent::Reply {
            key: self.to.key,
            req: self.to.req,
            resp,
        });
    }
}

impl Drop for Replier {
    fn drop(&mut self) {
        if !self.sent {
            self.deliver(Response::from_error(&ApiError::Internal));
        }
    }
}
