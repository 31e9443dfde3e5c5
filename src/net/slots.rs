//! Connection slots, shared by a node's loops: the node-wide count behind
//! `server.max_connections` and the per-address count behind `limits.connections_per_ip`.
//! Each accepted connection holds a [`Slot`], released when the connection is dropped,
//! however it ends. A loop that finds every slot taken stops accepting (the rest waits
//! in the kernel's backlog) and parks its handle here; the release that brings the count
//! below the resume level (90 % of the limit) wakes the parked loops, so accepting
//! resumes on a release rather than on a timer, and the hysteresis keeps a node at its
//! limit from flapping between accepting one connection and pausing again.

use crate::base::limits::PerIp;
use crate::base::metrics::Metrics;
use crate::base::session::Admission;
use crate::net::handle::{LoopHandle, LoopMsg};
use std::net::IpAddr;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Mutex};

/// The node's connection slots.
pub struct Slots {
    /// `connections` is the node-wide count (the gauge /metrics shows).
    metrics: Arc<Metrics>,
    /// `server.max_connections`.
    max: i64,
    /// Parked loops resume once the count is below this.
    resume_below: i64,
    /// Connections per peer address (`LimitsConfig::per_peer_connections`; 0: no limit).
    per_ip_limit: u32,
    per_ip: PerIp,
    /// Loops that stopped accepting at the limit.
    parked: Mutex<Vec<Arc<LoopHandle>>>,
    /// Set while `parked` is not empty: a release looks at the lock only then.
    any_parked: AtomicBool,
}

/// One connection's slot; dropping it gives the slot back.
pub struct Slot {
    slots: Arc<Slots>,
    peer: IpAddr,
    /// Holds one of the address's slots too.
    per_ip: bool,
}

impl Slots {
    /// Slots for `max` connections, `per_ip_limit` per address (0: unlimited).
    pub fn new(max: usize, per_ip_limit: u32, metrics: Arc<Metrics>) -> Arc<Slots> {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        // Below ten connections 90 % is less than one slot: resume on any release.
        let resume_below = if max < 10 {
            max
        } else {
            max.saturating_mul(9) / 10
        };
        Arc::new(Slots {
            metrics,
            max,
            resume_below,
            per_ip_limit,
            per_ip: PerIp::default(),
            parked: Mutex::new(Vec::new()),
            any_parked: AtomicBool::new(false),
        })
    }

    /// Every slot is taken: accept nothing more for now.
    pub fn full(&self) -> bool {
        self.metrics.connections.load(SeqCst) >= self.max
    }

    /// Takes a slot for a connection from `peer` (the caller checked [`Slots::full`]);
    /// over the address's limit, the connection holds a node-wide slot only, for as
    /// long as it takes to refuse it.
    pub fn acquire(self: &Arc<Self>, peer: IpAddr) -> (Slot, Admission) {
        self.metrics.connections.fetch_add(1, SeqCst);
        let per_ip = self.per_ip.acquire(peer, self.per_ip_limit);
        let slot = Slot {
            slots: Arc::clone(self),
            peer,
            per_ip,
        };
        let admission = if per_ip {
            Admission::Admitted
        } else {
            Admission::OverAddressLimit
        };
        (slot, admission)
    }

    /// Parks a loop that found every slot taken, until a release wakes it with
    /// `LoopMsg::Accept`; false (not parked) when slots were released meanwhile.
    pub fn park(&self, handle: &Arc<LoopHandle>) -> bool {
        let Ok(mut parked) = self.parked.lock() else {
            return false;
        };
        parked.push(Arc::clone(handle));
        self.any_parked.store(true, SeqCst);
        // A release that came before `any_parked` was set did not look at the list.
        if self.metrics.connections.load(SeqCst) < self.resume_below {
            parked.retain(|h| !Arc::ptr_eq(h, handle));
            self.any_parked.store(!parked.is_empty(), SeqCst);
            return false;
        }
        true
    }

    fn release(&self, peer: IpAddr, per_ip: bool) {
        if per_ip {
            self.per_ip.release(peer, self.per_ip_limit);
        }
        let open = self.metrics.connections.fetch_sub(1, SeqCst) - 1;
        if open < self.resume_below && self.any_parked.load(SeqCst) {
            let woken = match self.parked.lock() {
                Ok(mut parked) => {
                    self.any_parked.store(false, SeqCst);
                    std::mem::take(&mut *parked)
                }
                Err(_) => Vec::new(),
            };
            for h in woken {
                h.send(LoopMsg::Accept);
            }
        }
    }
}

impl Slot {
    /// The peer's address.
    pub fn peer(&self) -> IpAddr {
        self.peer
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.release(self.peer, self.per_ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::Receiver;

    fn slots(max: usize, per_ip: u32) -> (Arc<Slots>, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::default());
        (Slots::new(max, per_ip, metrics.clone()), metrics)
    }

    /// A loop's handle over a real waker; the receiver shows what the loop was sent.
    fn handle() -> (Arc<LoopHandle>, Receiver<LoopMsg>, mio::Poll) {
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(0)).unwrap());
        let (tx, rx) = crossbeam_channel::unbounded();
        (Arc::new(LoopHandle::new(tx, waker)), rx, poll)
    }

    fn resumed(rx: &Receiver<LoopMsg>) -> bool {
        matches!(rx.try_recv(), Ok(LoopMsg::Accept))
    }

    #[test]
    fn a_slot_is_given_back_when_dropped() {
        let (s, m) = slots(100, 2);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let (a, first) = s.acquire(ip);
        let (b, second) = s.acquire(ip);
        let (c, third) = s.acquire(ip);
        assert_eq!(
            (first, second, third),
            (
                Admission::Admitted,
                Admission::Admitted,
                Admission::OverAddressLimit
            )
        );
        assert_eq!(m.connections.load(SeqCst), 3);
        drop(c);
        assert_eq!(m.connections.load(SeqCst), 2);
        assert_eq!(
            s.acquire(ip).1,
            Admission::OverAddressLimit,
            "c held no address slot"
        );
        drop(a);
        let (d, again) = s.acquire(ip);
        assert_eq!(again, Admission::Admitted);
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(s.acquire(other).1, Admission::Admitted);
        drop((b, d));
        assert_eq!(m.connections.load(SeqCst), 0);
    }

    #[test]
    fn accepting_resumes_below_ninety_percent_on_a_release() {
        let (s, _) = slots(20, 0);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let mut held: Vec<Slot> = (0..20).map(|_| s.acquire(ip).0).collect();
        assert!(s.full());
        let (h, rx, _poll) = handle();
        assert!(s.park(&h));
        // 19 and 18 open: still at the limit's edge, no wake (hysteresis).
        held.pop();
        held.pop();
        assert!(!s.full());
        assert!(!resumed(&rx));
        // 17 open: below 90 % of 20.
        held.pop();
        assert!(resumed(&rx));
        // Woken once: the loop parks again if it needs to.
        held.pop();
        assert!(!resumed(&rx));
    }

    #[test]
    fn parking_after_the_release_does_not_park() {
        let (s, _) = slots(10, 0);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let held: Vec<Slot> = (0..5).map(|_| s.acquire(ip).0).collect();
        let (h, rx, _poll) = handle();
        assert!(!s.park(&h), "below the resume level already");
        drop(held);
        assert!(!resumed(&rx), "not parked, not woken");
    }

    #[test]
    fn small_limits_resume_on_any_release() {
        let (s, _) = slots(3, 0);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let mut held: Vec<Slot> = (0..3).map(|_| s.acquire(ip).0).collect();
        let (h, rx, _poll) = handle();
        assert!(s.park(&h));
        held.pop();
        assert!(resumed(&rx));
    }
}
