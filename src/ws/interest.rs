//! Which loops of this node have joined sockets in which rooms: the listener's routing
//! table (a batch goes only to the loops that have its room), plus each loop's room and
//! subscription counts for /metrics.

use crate::pg::notify::shard_of;
use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use uuid::Uuid;

/// Most loops a node can route to (`server.event_loops` is validated against it).
pub const MAX_LOOPS: usize = 256;
const WORDS: usize = MAX_LOOPS / 64;

/// A set of loop indices.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct Loops([u64; WORDS]);

impl Loops {
    fn set(&mut self, i: usize, on: bool) {
        let (w, b) = (i / 64, 1u64 << (i % 64));
        if let Some(word) = self.0.get_mut(w) {
            if on {
                *word |= b;
            } else {
                *word &= !b;
            }
        }
    }

    /// True when no loop is in the set.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    /// The loop indices in the set, ascending.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(w, word)| {
            (0..64)
                .filter(move |b| word & (1u64 << b) != 0)
                .map(move |b| w * 64 + b)
        })
    }
}

/// Rooms with joined sockets on this node, by loop; and the notification shards those
/// rooms need, and which of them the listener LISTENs to.
pub struct Interest {
    inner: RwLock<Rooms>,
    /// Per loop: (rooms with subscribers, socket-room subscriptions).
    stats: Vec<(AtomicUsize, AtomicUsize)>,
    shards: u16,
    /// Shards with at least one room here.
    wanted: AtomicU64,
    /// Shards the listener LISTENs to (a join in a room of another waits).
    active: AtomicU64,
}

#[derive(Default)]
struct Rooms {
    rooms: HashMap<Uuid, Loops>,
    /// Rooms here per shard.
    per_shard: Vec<u32>,
}

impl Interest {
    /// An empty table for `loops` loops and `shards` notification shards.
    pub fn new(loops: usize, shards: u16) -> Interest {
        Interest {
            inner: RwLock::new(Rooms {
                rooms: HashMap::new(),
                per_shard: vec![0; usize::from(shards.max(1))],
            }),
            stats: (0..loops)
                .map(|_| (AtomicUsize::new(0), AtomicUsize::new(0)))
                .collect(),
            shards: shards.max(1),
            wanted: AtomicU64::new(0),
            active: AtomicU64::new(0),
        }
    }

    fn bit(&self, room: Uuid) -> (usize, u64) {
        let s = shard_of(room, self.shards);
        (usize::from(s), 1u64 << s)
    }

    /// Loop `l` gained its first subscriber in `room`.
    pub fn gain(&self, room: Uuid, l: usize) {
        let (s, bit) = self.bit(room);
        if let Ok(mut g) = self.inner.write() {
            let inner = &mut *g;
            let set = inner.rooms.entry(room).or_insert_with(|| {
                if let Some(n) = inner.per_shard.get_mut(s) {
                    *n += 1;
                }
                Loops::default()
            });
            set.set(l, true);
            self.wanted.fetch_or(bit, Relaxed);
        }
    }

    /// Loop `l` lost its last subscriber in `room`.
    pub fn lose(&self, room: Uuid, l: usize) {
        let (s, bit) = self.bit(room);
        if let Ok(mut g) = self.inner.write()
            && let Some(set) = g.rooms.get_mut(&room)
        {
            set.set(l, false);
            if set.is_empty() {
                g.rooms.remove(&room);
                if let Some(n) = g.per_shard.get_mut(s) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.wanted.fetch_and(!bit, Relaxed);
                    }
                }
            }
        }
    }

    /// The loops with subscribers in `room`.
    pub fn loops(&self, room: Uuid) -> Loops {
        self.inner
            .read()
            .map(|m| m.rooms.get(&room).copied().unwrap_or_default())
            .unwrap_or_default()
    }

    /// The shards this node's rooms need, as a bit mask.
    pub fn wanted(&self) -> u64 {
        self.wanted.load(Relaxed)
    }

    /// Records the shards the listener LISTENs to; returns those new to the set.
    pub fn set_active(&self, mask: u64) -> u64 {
        let before = self.active.swap(mask, Relaxed);
        mask & !before
    }

    /// Whether the listener LISTENs to `room`'s shard (a join waits until it does, so
    /// that nothing committed after its check goes unnoticed).
    pub fn shard_active(&self, room: Uuid) -> bool {
        self.active.load(Relaxed) & self.bit(room).1 != 0
    }

    /// Whether some loop of this node has subscribers in `room`.
    pub fn has(&self, room: Uuid) -> bool {
        !self.loops(room).is_empty()
    }

    /// Publishes loop `l`'s counts (plain stores: no lock on the join path).
    pub fn set_stats(&self, l: usize, rooms: usize, subscriptions: usize) {
        if let Some((r, s)) = self.stats.get(l) {
            r.store(rooms, Relaxed);
            s.store(subscriptions, Relaxed);
        }
    }

    /// Per loop: (rooms with subscribers, subscriptions).
    pub fn stats(&self) -> Vec<(usize, usize)> {
        self.stats
            .iter()
            .map(|(r, s)| (r.load(Relaxed), s.load(Relaxed)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_route_to_the_loops_that_have_them() {
        let i = Interest::new(3, 16);
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        i.gain(a, 0);
        i.gain(a, 2);
        i.gain(b, 130);
        assert_eq!(i.loops(a).iter().collect::<Vec<_>>(), vec![0, 2]);
        assert_eq!(i.loops(b).iter().collect::<Vec<_>>(), vec![130]);
        i.lose(a, 0);
        assert!(i.has(a));
        i.lose(a, 2);
        assert!(!i.has(a));
        assert!(i.loops(Uuid::nil()).is_empty());
        // Shards: wanted while a room of theirs is here.
        let bit = 1u64 << shard_of(b, 16);
        assert_eq!(i.wanted(), bit);
        assert!(!i.shard_active(b));
        assert_eq!(i.set_active(bit), bit);
        assert!(i.shard_active(b));
        assert_eq!(i.set_active(bit), 0);
        i.lose(b, 130);
        assert_eq!(i.wanted(), 0);
    }
}
