//! A per-node cache of each room's newest messages, already serialised, for history reads.
//!
//! PostgreSQL stays the judge of every read: a history request first asks it for the
//! room's head seq and the reader's membership (one indexed row), and the page comes
//! from this cache only when the cache holds every seq the page needs. Messages are
//! never changed once stored and seqs are gapless, so a contiguous run of cached seqs is
//! exactly what the table holds: a stale or missing entry costs a read, never a wrong
//! answer. Notifications extend cached runs as messages commit; a miss reads the rows
//! and fills the cache.

use crate::base::model::Message;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// Most messages kept per room: two full pages of the largest `limit`.
pub const KEEP: usize = 2 * crate::chat::pages::MAX_PAGE as usize;
/// Bookkeeping counted per cached message besides its JSON.
const ENTRY_OVERHEAD: usize = 48;

/// One message as it appears in a history page.
pub type Json = Arc<[u8]>;

/// The cache; `budget` bytes of JSON (0 turns it off).
pub struct HistoryCache {
    budget: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    rooms: HashMap<Uuid, Run>,
    bytes: usize,
    clock: u64,
    /// Per room, how many times its cached messages were invalidated (an edit, a
    /// deletion, a reaction or a reply changed an earlier row); with `epoch`, bumped
    /// when the map is cleared to bound it.
    gens: HashMap<Uuid, u64>,
    epoch: u64,
}

/// A room's cache generation: a fill read under an older one may be stale.
pub type Generation = (u64, u64);

/// Messages with seqs `first ..= first + msgs.len() - 1`, ascending.
struct Run {
    first: i64,
    msgs: VecDeque<Json>,
    bytes: usize,
    used: u64,
}

impl Run {
    fn last(&self) -> i64 {
        self.first + self.msgs.len() as i64 - 1
    }
}

fn cost(j: &Json) -> usize {
    j.len() + ENTRY_OVERHEAD
}

/// A message serialised the way history pages carry it.
pub fn encode(m: &Message) -> Json {
    Arc::from(serde_json::to_vec(m).unwrap_or_default())
}

impl HistoryCache {
    /// A cache holding at most `budget` bytes.
    pub fn new(budget: usize) -> HistoryCache {
        HistoryCache {
            budget,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Whether the room has cached messages (then live notifications keep it current).
    pub fn holds(&self, room: Uuid) -> bool {
        self.budget > 0
            && self
                .inner
                .lock()
                .map(|i| i.rooms.contains_key(&room))
                .unwrap_or(false)
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.inner.lock().map(|i| i.bytes).unwrap_or(0)
    }

    /// The messages with seqs `lo ..= top`, newest first, when every one is cached and
    /// the cache has seen the room's stream up to its `head` (so every change to an
    /// earlier message committed by then has invalidated what it changed).
    pub fn page(&self, room: Uuid, lo: i64, top: i64, head: i64) -> Option<Vec<Json>> {
        if self.budget == 0 || lo > top {
            return None;
        }
        let mut inner = self.inner.lock().ok()?;
        inner.clock += 1;
        let now = inner.clock;
        let run = inner.rooms.get_mut(&room)?;
        if run.first > lo || run.last() < top.max(head) {
            return None;
        }
        run.used = now;
        let from = (lo - run.first) as usize;
        let to = (top - run.first) as usize;
        Some((from..=to).rev().map(|i| run.msgs[i].clone()).collect())
    }

    /// Live messages (ascending, contiguous) of a room that is cached; others are ignored,
    /// so only rooms someone reads take memory.
    pub fn extend(&self, room: Uuid, first: i64, msgs: &[Json]) {
        self.merge(room, first, msgs, false);
    }

    /// Messages read from the table (ascending, contiguous, starting at seq `first`),
    /// under generation `at` (taken before the read): dropped if the room was
    /// invalidated since, as the rows may predate the change.
    pub fn fill(&self, room: Uuid, first: i64, msgs: &[Json], at: Generation) {
        if self.generation(room) == at {
            self.merge(room, first, msgs, true);
        }
    }

    /// The room's current generation.
    pub fn generation(&self, room: Uuid) -> Generation {
        self.inner
            .lock()
            .map(|i| (i.epoch, i.gens.get(&room).copied().unwrap_or(0)))
            .unwrap_or((u64::MAX, u64::MAX))
    }

    /// Forgets the room's messages: an entry changed an earlier one.
    pub fn invalidate(&self, room: Uuid) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if let Some(run) = inner.rooms.remove(&room) {
            inner.bytes -= run.bytes;
        }
        if inner.gens.len() >= 100_000 {
            inner.gens.clear();
            inner.epoch += 1;
        }
        *inner.gens.entry(room).or_insert(0) += 1;
    }

    fn merge(&self, room: Uuid, first: i64, msgs: &[Json], create: bool) {
        if self.budget == 0 || msgs.is_empty() || first < 1 {
            return;
        }
        let Ok(mut guard) = self.inner.lock() else {
            return;
        };
        let inner = &mut *guard;
        inner.clock += 1;
        let now = inner.clock;
        let last = first + msgs.len() as i64 - 1;
        let fresh = |first: i64, msgs: &[Json]| {
            let keep = &msgs[msgs.len().saturating_sub(KEEP)..];
            Run {
                first: first + (msgs.len() - keep.len()) as i64,
                bytes: keep.iter().map(cost).sum(),
                msgs: keep.iter().cloned().collect(),
                used: now,
            }
        };
        let before = inner.rooms.get(&room).map_or(0, |r| r.bytes);
        match inner.rooms.get_mut(&room) {
            None if !create => return,
            None => {
                inner.rooms.insert(room, fresh(first, msgs));
            }
            // Newer and not adjacent: the cached run is still true, but only the newest
            // messages are worth keeping.
            Some(run) if first > run.last() + 1 => *run = fresh(first, msgs),
            // Older and not adjacent: keep the newer run.
            Some(run) if last < run.first - 1 => {
                run.used = now;
                return;
            }
            Some(run) => {
                // Overlapping or adjacent: add what is missing at either end.
                for i in (0..msgs.len()).rev() {
                    let seq = first + i as i64;
                    if seq < run.first {
                        run.bytes += cost(&msgs[i]);
                        run.msgs.push_front(msgs[i].clone());
                        run.first = seq;
                    }
                }
                let tail = (run.last() + 1 - first).max(0) as usize;
                for m in msgs.iter().skip(tail) {
                    run.bytes += cost(m);
                    run.msgs.push_back(m.clone());
                }
                while run.msgs.len() > KEEP {
                    if let Some(m) = run.msgs.pop_front() {
                        run.bytes -= cost(&m);
                        run.first += 1;
                    }
                }
                run.used = now;
            }
        }
        let after = inner.rooms.get(&room).map_or(0, |r| r.bytes);
        inner.bytes = inner.bytes + after - before;
        if inner.bytes > self.budget {
            inner.evict(self.budget - self.budget / 4);
        }
    }
}

impl Inner {
    /// Drops the least recently used rooms until at most `target` bytes remain.
    /// Sorting every room is O(n log n) but runs once per quarter of the budget.
    fn evict(&mut self, target: usize) {
        let mut order: Vec<(u64, Uuid)> = self.rooms.iter().map(|(k, r)| (r.used, *k)).collect();
        order.sort_unstable();
        for (_, room) in order {
            if self.bytes <= target {
                break;
            }
            if let Some(r) = self.rooms.remove(&room) {
                self.bytes -= r.bytes;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(from: i64, to: i64) -> Vec<Json> {
        (from..=to)
            .map(|s| Arc::from(format!("{{\"seq\":{s}}}").into_bytes()))
            .collect()
    }

    fn seqs(page: Option<Vec<Json>>) -> Option<Vec<i64>> {
        page.map(|p| {
            p.iter()
                .map(|j| {
                    let v: serde_json::Value = serde_json::from_slice(j).unwrap();
                    v["seq"].as_i64().unwrap()
                })
                .collect()
        })
    }

    #[test]
    fn a_change_invalidates_and_stale_fills_are_dropped() {
        let c = HistoryCache::new(1 << 20);
        let r = Uuid::nil();
        let before = c.generation(r);
        c.fill(r, 1, &msgs(1, 10), before);
        assert!(c.page(r, 1, 10, 10).is_some());
        // The stream went on past what the cache saw: not served.
        assert_eq!(c.page(r, 1, 10, 11), None);
        c.invalidate(r);
        assert_eq!(c.page(r, 1, 10, 10), None);
        // A read taken before the change comes back: dropped.
        c.fill(r, 1, &msgs(1, 10), before);
        assert_eq!(c.page(r, 1, 10, 10), None);
        c.fill(r, 1, &msgs(1, 10), c.generation(r));
        assert!(c.page(r, 1, 10, 10).is_some());
    }

    #[test]
    fn serves_only_what_it_holds() {
        let c = HistoryCache::new(1 << 20);
        let r = Uuid::new_v4();
        assert_eq!(c.page(r, 1, 5, 5), None);
        c.extend(r, 1, &msgs(1, 5));
        assert_eq!(
            c.page(r, 1, 5, 5),
            None,
            "live messages alone do not create a room"
        );
        c.fill(r, 11, &msgs(11, 60), c.generation(r));
        assert_eq!(seqs(c.page(r, 58, 60, 60)), Some(vec![60, 59, 58]));
        assert_eq!(c.page(r, 10, 60, 60), None, "seq 10 is not cached");
        assert_eq!(c.page(r, 11, 61, 61), None, "seq 61 is not cached");
        c.extend(r, 61, &msgs(61, 62));
        assert_eq!(seqs(c.page(r, 60, 62, 62)), Some(vec![62, 61, 60]));
        // Older, adjacent rows extend the run downwards.
        c.fill(r, 1, &msgs(1, 10), c.generation(r));
        assert_eq!(seqs(c.page(r, 1, 2, 2)), Some(vec![2, 1]));
        // Overlaps add nothing twice.
        c.extend(r, 60, &msgs(60, 63));
        assert_eq!(
            seqs(c.page(r, 1, 63, 63)).map(|v| v.len()),
            Some(63),
            "every seq exactly once"
        );
    }

    #[test]
    fn a_gap_restarts_the_run_and_old_rows_do_not_replace_new_ones() {
        let c = HistoryCache::new(1 << 20);
        let r = Uuid::new_v4();
        c.fill(r, 1, &msgs(1, 10), c.generation(r));
        c.extend(r, 20, &msgs(20, 25));
        assert_eq!(c.page(r, 10, 20, 20), None);
        assert_eq!(c.page(r, 1, 1, 1), None, "the old run was replaced");
        assert_eq!(seqs(c.page(r, 20, 25, 25)).map(|v| v.len()), Some(6));
        c.fill(r, 1, &msgs(1, 5), c.generation(r));
        assert_eq!(c.page(r, 1, 5, 5), None);
        assert_eq!(seqs(c.page(r, 25, 25, 25)), Some(vec![25]));
    }

    #[test]
    fn keeps_at_most_keep_messages_per_room() {
        let c = HistoryCache::new(1 << 24);
        let r = Uuid::new_v4();
        c.fill(r, 1, &msgs(1, 150), c.generation(r));
        c.extend(r, 151, &msgs(151, 300));
        assert_eq!(c.page(r, 100, 300, 300), None);
        assert_eq!(seqs(c.page(r, 101, 300, 300)).map(|v| v[0]), Some(300));
        c.fill(r, 1, &msgs(1, 1000), c.generation(r));
        assert_eq!(seqs(c.page(r, 801, 1000, 1000)).map(|v| v.len()), Some(200));
        let expected: usize = msgs(801, 1000).iter().map(cost).sum();
        assert_eq!(
            c.bytes(),
            expected,
            "byte count follows trims and replacements"
        );
    }

    #[test]
    fn evicts_least_recently_used_rooms_within_the_budget() {
        let one_room: usize = msgs(1, 100).iter().map(cost).sum();
        let c = HistoryCache::new(one_room * 3 + one_room / 2);
        let rooms: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
        for r in &rooms[..3] {
            c.fill(*r, 1, &msgs(1, 100), c.generation(*r));
        }
        assert!(
            c.page(rooms[0], 1, 1, 1).is_some(),
            "room 0 is now the most recent"
        );
        c.fill(rooms[3], 1, &msgs(1, 100), c.generation(rooms[3]));
        assert!(c.bytes() <= one_room * 3, "{}", c.bytes());
        assert!(c.page(rooms[3], 1, 100, 100).is_some());
        assert!(c.page(rooms[0], 1, 100, 100).is_some());
        assert!(
            c.page(rooms[1], 1, 100, 100).is_none(),
            "least recently used goes first"
        );
    }

    #[test]
    fn a_zero_budget_caches_nothing() {
        let c = HistoryCache::new(0);
        let r = Uuid::new_v4();
        c.fill(r, 1, &msgs(1, 10), c.generation(r));
        assert!(!c.holds(r));
        assert_eq!(c.page(r, 1, 10, 10), None);
        assert_eq!(c.bytes(), 0);
    }
}
