//! How other threads reach one event loop: a typed message on a channel, then a wake of
//! the loop's `mio::Waker`, with wakes coalesced.

use crate::http::context::Replies;
use crate::http::response::Response;
use crate::ws::{LoopEvent, Mailbox};
use crossbeam_channel::Sender;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A message for an event loop.
pub enum LoopMsg {
    /// The answer to an HTTP request that went to a worker.
    Http {
        /// Connection slot.
        key: usize,
        /// Request id (guards against a reused slot or an answer already given).
        req: u64,
        /// The response.
        resp: Response,
    },
    /// Something for the WebSocket side of the loop.
    Ws(LoopEvent),
    /// Stop accepting, close sockets with 1001, exit when flushed.
    Shutdown,
}

/// A loop's channel plus its Waker.
pub struct LoopHandle {
    tx: Sender<LoopMsg>,
    waker: Arc<mio::Waker>,
    /// Set while a wake is pending, so a burst of sends costs one wake-up.
    pending: AtomicBool,
}

impl LoopHandle {
    /// A handle over the loop's channel and waker.
    pub fn new(tx: Sender<LoopMsg>, waker: Arc<mio::Waker>) -> LoopHandle {
        LoopHandle {
            tx,
            waker,
            pending: AtomicBool::new(false),
        }
    }

    /// Sends a message and wakes the loop unless a wake is already pending.
    pub fn send(&self, msg: LoopMsg) {
        if self.tx.send(msg).is_ok() && !self.pending.swap(true, Ordering::AcqRel) {
            let _ = self.waker.wake();
        }
    }

    /// Called by the loop before it drains its channel.
    pub fn clear_pending(&self) {
        self.pending.store(false, Ordering::Release);
    }

    /// Wakes the loop again (it left messages for its next turn).
    pub fn rewake(&self) {
        self.pending.store(true, Ordering::Release);
        let _ = self.waker.wake();
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.tx.len()
    }

    /// True when no message waits.
    pub fn is_empty(&self) -> bool {
        self.tx.is_empty()
    }
}

impl Mailbox for LoopHandle {
    fn post(&self, ev: LoopEvent) {
        self.send(LoopMsg::Ws(ev));
    }
}

impl Replies for LoopHandle {
    fn reply(&self, key: usize, req: u64, resp: Response) {
        self.send(LoopMsg::Http { key, req, resp });
    }
}
