//! How other threads reach one event loop: a typed message on a channel, then a wake of
//! the loop's `mio::Waker`, with wakes coalesced. The channel holds any number of
//! answers (they are bounded by the job queues that produced them) but sheds the
//! listener's live batches and room events once it holds [`MAILBOX_BOUND`] messages;
//! the loop then back-fills every room (docs/ARCHITECTURE.md, "Queues between threads").

use crate::http::context::{HttpEvent, Replies};
use crate::ws::{LoopEvent, Mailbox};
use crossbeam_channel::Sender;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Messages waiting in a loop's channel beyond which sheddable events are dropped.
pub const MAILBOX_BOUND: usize = 65_536;

/// A message for an event loop.
pub enum LoopMsg {
    /// Something for the HTTP side of the loop (a worker's answer).
    Http(HttpEvent),
    /// Something for the WebSocket side of the loop.
    Ws(LoopEvent),
    /// Connection slots were released below the resume level: accept again.
    Accept,
    /// Stop accepting, close sockets with 1001, exit when flushed.
    Shutdown,
}

/// A loop's channel plus its Waker.
pub struct LoopHandle {
    tx: Sender<LoopMsg>,
    waker: Arc<mio::Waker>,
    /// Set while a wake is pending, so a burst of sends costs one wake-up.
    pending: AtomicBool,
    /// An event was shed since the loop last looked: it must back-fill its rooms.
    shed: AtomicBool,
}

impl LoopHandle {
    /// A handle over the loop's channel and waker.
    pub fn new(tx: Sender<LoopMsg>, waker: Arc<mio::Waker>) -> LoopHandle {
        LoopHandle {
            tx,
            waker,
            pending: AtomicBool::new(false),
            shed: AtomicBool::new(false),
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

    /// Whether an event was shed since the last call (and forgets it).
    pub fn take_shed(&self) -> bool {
        self.shed.load(Ordering::Acquire) && self.shed.swap(false, Ordering::AcqRel)
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
        if ev.sheddable() && self.tx.len() >= MAILBOX_BOUND {
            // The loop is at least MAILBOX_BOUND messages behind, so it drains again
            // (and sees the flag) before it could miss it.
            if !self.shed.swap(true, Ordering::AcqRel) {
                log::warn!("a loop is {MAILBOX_BOUND} messages behind: shedding live events");
            }
            return;
        }
        self.send(LoopMsg::Ws(ev));
    }
}

impl Replies for LoopHandle {
    fn post(&self, ev: HttpEvent) {
        self.send(LoopMsg::Http(ev));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn a_full_mailbox_sheds_live_events_only_and_says_so_once() {
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(0)).unwrap());
        let (tx, rx) = crossbeam_channel::unbounded();
        let h = LoopHandle::new(tx, waker);
        let live = || {
            LoopEvent::Live(Arc::new(crate::ws::LiveBatch {
                room: Uuid::nil(),
                msgs: Vec::new(),
            }))
        };
        Mailbox::post(&h, live());
        assert_eq!(h.len(), 1);
        assert!(!h.take_shed());
        for _ in 1..MAILBOX_BOUND {
            h.send(LoopMsg::Accept);
        }
        Mailbox::post(&h, live());
        Mailbox::post(&h, live());
        assert_eq!(h.len(), MAILBOX_BOUND, "live events shed");
        Mailbox::post(&h, LoopEvent::Gone(Uuid::nil()));
        Mailbox::post(&h, LoopEvent::Resync);
        assert_eq!(h.len(), MAILBOX_BOUND + 2, "the others kept");
        assert!(h.take_shed());
        assert!(!h.take_shed());
        // Below the bound again: live events are queued.
        while rx.len() >= MAILBOX_BOUND - 1 {
            let _ = rx.try_recv();
        }
        Mailbox::post(&h, live());
        assert!(matches!(
            rx.try_iter().last(),
            Some(LoopMsg::Ws(LoopEvent::Live(_)))
        ));
        assert!(!h.take_shed());
    }
}
