//! Which loops of this node have joined sockets in which rooms: the listener's routing
//! table (a batch goes only to the loops that have its room), plus each loop's room and
//! subscription counts for /metrics.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
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

/// Rooms with joined sockets on this node, by loop.
pub struct Interest {
    rooms: RwLock<HashMap<Uuid, Loops>>,
    /// Per loop: (rooms with subscribers, socket-room subscriptions).
    stats: Vec<(AtomicUsize, AtomicUsize)>,
}

impl Interest {
    /// An empty table for `loops` loops.
    pub fn new(loops: usize) -> Interest {
        Interest {
            rooms: RwLock::new(HashMap::new()),
            stats: (0..loops)
                .map(|_| (AtomicUsize::new(0), AtomicUsize::new(0)))
                .collect(),
        }
    }

    /// Loop `l` gained its first subscriber in `room`.
    pub fn gain(&self, room: Uuid, l: usize) {
        if let Ok(mut m) = self.rooms.write() {
            m.entry(room).or_default().set(l, true);
        }
    }

    /// Loop `l` lost its last subscriber in `room`.
    pub fn lose(&self, room: Uuid, l: usize) {
        if let Ok(mut m) = self.rooms.write()
            && let Some(set) = m.get_mut(&room)
        {
            set.set(l, false);
            if set.is_empty() {
                m.remove(&room);
            }
        }
    }

    /// The loops with subscribers in `room`.
    pub fn loops(&self, room: Uuid) -> Loops {
        self.rooms
            .read()
            .map(|m| m.get(&room).copied().unwrap_or_default())
            .unwrap_or_default()
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
        let i = Interest::new(3);
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
    }
}
