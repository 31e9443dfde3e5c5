//! The per-loop room registry: which sockets of this loop are in which room, and the
//! room's live position (the last seq this loop delivered), kept gap-free.
//!
//! Pure bookkeeping, no I/O: the loop feeds it live batches and fetch results, and it
//! answers with what to deliver and which gaps to fetch.

use crate::base::model::Message;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Recent messages kept per room, so a join that completes mid-stream catches up
/// without a database round trip.
const RECENT: usize = 1024;

/// A room as seen by one loop.
#[derive(Default)]
pub struct RoomState {
    /// Connection keys subscribed (joined, or joining).
    subs: Vec<usize>,
    /// Position of each key in `subs`, so that joins and leaves in a big room cost
    /// O(1) rather than a scan of the room.
    index: HashMap<usize, usize>,
    /// Last seq delivered by this loop; `None` until the first join tells us.
    seq: Option<i64>,
    /// Live messages that arrived while the position was unknown or a gap was fetched.
    pending: Vec<Arc<Message>>,
    /// A gap fetch is in flight.
    fetching: bool,
    /// The last delivered messages, contiguous, ending at `seq`.
    recent: VecDeque<Arc<Message>>,
    /// Messages accepted and not yet fanned out.
    outbox: Vec<Arc<Message>>,
    /// When this loop last sent the room's live frame: within the batching window of
    /// it, the room is busy and new messages wait for the window's end.
    last_flush: Option<Instant>,
    /// `outbox` is listed in the registry's dirty rooms.
    queued: bool,
}

/// A range this loop must fetch: seq in `(after, upto]`.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct Gap {
    /// Last seq known.
    pub after: i64,
    /// Last seq needed.
    pub upto: i64,
}

/// All rooms of one loop.
#[derive(Default)]
pub struct Registry {
    /// Rooms by id.
    rooms: HashMap<Uuid, RoomState>,
    /// Rooms with a non-empty outbox.
    dirty: Vec<Uuid>,
    /// Socket-room subscriptions across all rooms (kept as it changes, for metrics).
    subscriptions: usize,
}

impl Registry {
    /// The connections subscribed to `room` on this loop (joined or joining).
    pub fn subs(&self, room: Uuid) -> &[usize] {
        self.rooms.get(&room).map_or(&[], |r| r.subs.as_slice())
    }

    /// Whether `room` has subscribers on this loop.
    pub fn has(&self, room: Uuid) -> bool {
        self.rooms.contains_key(&room)
    }

    /// The room's live position: the last seq this loop accepted, once known.
    pub fn seq(&self, room: Uuid) -> Option<i64> {
        self.rooms.get(&room).and_then(|r| r.seq)
    }

    /// Live messages of `room` wait from now on until a fetch's rows arrive.
    pub fn hold(&mut self, room: Uuid) {
        if let Some(r) = self.rooms.get_mut(&room) {
            r.fetching = true;
        }
    }

    /// Rooms with subscribers, and socket-room subscriptions (for metrics).
    pub fn counts(&self) -> (usize, usize) {
        (self.rooms.len(), self.subscriptions)
    }

    /// Whether some room holds messages not yet fanned out.
    pub fn has_outbox(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// When the next held room is due, given the batching window; `None` when no room
    /// holds messages.
    pub fn next_due(&self, window: std::time::Duration) -> Option<Instant> {
        self.dirty
            .iter()
            .filter_map(|id| self.rooms.get(id))
            .map(|r| r.last_flush.map_or_else(Instant::now, |t| t + window))
            .min()
    }

    /// Adds a subscriber; returns true when the room is new to this loop.
    pub fn subscribe(&mut self, room: Uuid, key: usize) -> bool {
        let fresh = !self.rooms.contains_key(&room);
        let r = self.rooms.entry(room).or_default();
        if let std::collections::hash_map::Entry::Vacant(e) = r.index.entry(key) {
            e.insert(r.subs.len());
            r.subs.push(key);
            self.subscriptions += 1;
        }
        fresh
    }

    /// Removes a subscriber; returns true when the room left this loop.
    pub fn unsubscribe(&mut self, room: Uuid, key: usize) -> bool {
        let Some(r) = self.rooms.get_mut(&room) else {
            return false;
        };
        if let Some(i) = r.index.remove(&key) {
            if r.subs.get(i) == Some(&key) {
                r.subs.swap_remove(i);
                if let Some(&moved) = r.subs.get(i) {
                    r.index.insert(moved, i);
                }
            } else {
                // The list was changed behind the index: rebuild rather than trust it.
                r.subs.retain(|k| *k != key);
                r.index = r.subs.iter().enumerate().map(|(i, k)| (*k, i)).collect();
            }
            self.subscriptions -= 1;
        }
        if r.subs.is_empty() {
            self.rooms.remove(&room);
            self.dirty.retain(|d| *d != room);
            return true;
        }
        false
    }

    /// Sets the live position from a join's answer when still unknown; may reveal a gap.
    pub fn init_seq(&mut self, room: Uuid, seq: i64) -> Option<Gap> {
        let r = self.rooms.get_mut(&room)?;
        if r.seq.is_some() {
            return None;
        }
        r.seq = Some(seq);
        let pending = std::mem::take(&mut r.pending);
        self.apply(room, &pending)
    }

    /// A live batch from the listener (ascending seq).
    pub fn live(&mut self, room: Uuid, msgs: &[Arc<Message>]) -> Option<Gap> {
        let r = self.rooms.get_mut(&room)?;
        if r.seq.is_none() || r.fetching {
            r.pending.extend(msgs.iter().cloned());
            return None;
        }
        self.apply(room, msgs)
    }

    /// Rows fetched for a gap; then whatever waited behind it.
    pub fn fetched(&mut self, room: Uuid, msgs: &[Arc<Message>]) -> Option<Gap> {
        let r = self.rooms.get_mut(&room)?;
        r.fetching = false;
        let mut all = std::mem::take(&mut r.pending);
        all.extend(msgs.iter().cloned());
        self.apply(room, &all)
    }

    /// Forget the live position's trust: after a listener reconnect, every room must be
    /// checked against the database. Returns the fetches to make.
    pub fn resync(&mut self) -> Vec<(Uuid, Gap)> {
        let mut out = Vec::new();
        for (id, r) in self.rooms.iter_mut() {
            if let (Some(seq), false) = (r.seq, r.fetching) {
                r.fetching = true;
                out.push((
                    *id,
                    Gap {
                        after: seq,
                        upto: i64::MAX,
                    },
                ));
            }
        }
        out
    }

    /// Accepts messages in order from `seq + 1`; stops at a hole and reports it.
    fn apply(&mut self, room: Uuid, msgs: &[Arc<Message>]) -> Option<Gap> {
        let r = self.rooms.get_mut(&room)?;
        let mut seq = r.seq?;
        let mut sorted: Vec<&Arc<Message>> = msgs.iter().filter(|m| m.seq > seq).collect();
        sorted.sort_by_key(|m| m.seq);
        sorted.dedup_by_key(|m| m.seq);
        let mut gap = None;
        for (i, m) in sorted.iter().enumerate() {
            if m.seq != seq + 1 {
                r.pending.extend(sorted[i..].iter().map(|m| (*m).clone()));
                r.fetching = true;
                gap = Some(Gap {
                    after: seq,
                    upto: m.seq - 1,
                });
                break;
            }
            seq = m.seq;
            r.outbox.push((*m).clone());
            r.recent.push_back((*m).clone());
            if r.recent.len() > RECENT {
                r.recent.pop_front();
            }
        }
        if !r.outbox.is_empty() && !r.queued {
            r.queued = true;
            self.dirty.push(room);
        }
        r.seq = Some(seq);
        gap
    }

    /// The rooms whose held messages are due now: a room goes out at once when its last
    /// frame left more than `window` ago (a quiet room waits for nothing), else when
    /// the window since that frame ends, carrying everything that arrived meanwhile.
    /// Returns each with its messages, and marks it sent now.
    pub fn due(&mut self, now: Instant, window: Duration) -> Vec<(Uuid, Vec<Arc<Message>>)> {
        let mut out = Vec::new();
        let dirty = std::mem::take(&mut self.dirty);
        for id in dirty {
            let Some(r) = self.rooms.get_mut(&id) else {
                continue;
            };
            if r.last_flush.is_some_and(|t| now < t + window) {
                self.dirty.push(id);
                continue;
            }
            r.queued = false;
            r.last_flush = Some(now);
            out.push((id, std::mem::take(&mut r.outbox)));
        }
        out
    }

    /// Messages with seq in `(after, upto]` if the recent buffer still has them all.
    pub fn recent_range(&self, room: Uuid, after: i64, upto: i64) -> Option<Vec<Arc<Message>>> {
        let r = self.rooms.get(&room)?;
        if upto <= after {
            return Some(Vec::new());
        }
        let first = r.recent.front()?.seq;
        if first > after + 1 {
            return None;
        }
        let out: Vec<_> = r
            .recent
            .iter()
            .filter(|m| m.seq > after && m.seq <= upto)
            .cloned()
            .collect();
        (out.len() as i64 == upto - after).then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(seq: i64) -> Arc<Message> {
        Arc::new(Message {
            id: seq,
            seq,
            room_id: Uuid::nil(),
            user_id: Uuid::nil(),
            username: "u".into(),
            content: String::new(),
            created_at: String::new(),
            client_msg_id: None,
            ..Default::default()
        })
    }

    fn seqs(v: &[Arc<Message>]) -> Vec<i64> {
        v.iter().map(|m| m.seq).collect()
    }

    #[test]
    fn buffers_until_position_known() {
        let mut reg = Registry::default();
        let room = Uuid::nil();
        assert!(reg.subscribe(room, 1));
        assert_eq!(reg.live(room, &[m(4), m(5)]), None);
        assert!(reg.rooms[&room].outbox.is_empty());
        assert_eq!(reg.next_due(Duration::ZERO), None);
        assert_eq!(reg.init_seq(room, 4), None);
        assert_eq!(seqs(&reg.rooms[&room].outbox), vec![5]);
    }

    #[test]
    fn gap_is_fetched_then_filled_in_order() {
        let mut reg = Registry::default();
        let room = Uuid::nil();
        reg.subscribe(room, 1);
        reg.init_seq(room, 0);
        assert_eq!(reg.live(room, &[m(1)]), None);
        assert_eq!(
            reg.live(room, &[m(4), m(5)]),
            Some(Gap { after: 1, upto: 3 })
        );
        // While fetching, more live messages wait.
        assert_eq!(reg.live(room, &[m(6)]), None);
        assert_eq!(reg.fetched(room, &[m(2), m(3)]), None);
        assert_eq!(seqs(&reg.rooms[&room].outbox), vec![1, 2, 3, 4, 5, 6]);
        // Duplicates are ignored.
        assert_eq!(reg.live(room, &[m(5), m(6)]), None);
        assert_eq!(reg.rooms[&room].outbox.len(), 6);
        assert_eq!(seqs(&reg.recent_range(room, 2, 5).unwrap()), vec![3, 4, 5]);
    }

    #[test]
    fn resync_and_unsubscribe() {
        let mut reg = Registry::default();
        let room = Uuid::nil();
        reg.subscribe(room, 1);
        reg.subscribe(room, 2);
        reg.init_seq(room, 7);
        assert_eq!(
            reg.resync(),
            vec![(
                room,
                Gap {
                    after: 7,
                    upto: i64::MAX
                }
            )]
        );
        assert_eq!(reg.fetched(room, &[m(8)]), None);
        assert_eq!(reg.subscriptions, 2);
        assert!(!reg.unsubscribe(room, 1));
        assert!(!reg.unsubscribe(room, 1));
        assert_eq!(reg.subscriptions, 1);
        assert!(reg.unsubscribe(room, 2));
        assert!(reg.rooms.is_empty());
        assert_eq!(reg.subscriptions, 0);
    }

    #[test]
    fn quiet_rooms_go_at_once_busy_rooms_once_per_window() {
        let mut reg = Registry::default();
        let room = Uuid::nil();
        let w = Duration::from_millis(20);
        reg.subscribe(room, 1);
        reg.init_seq(room, 0);
        let t0 = Instant::now();
        reg.live(room, &[m(1)]);
        // Quiet: out at once.
        let due = reg.due(t0, w);
        assert_eq!(due.len(), 1);
        assert_eq!(seqs(&due[0].1), vec![1]);
        // Busy: what follows within the window waits for its end, then goes as one.
        reg.live(room, &[m(2)]);
        reg.live(room, &[m(3)]);
        assert!(reg.due(t0 + Duration::from_millis(5), w).is_empty());
        assert_eq!(reg.next_due(w), Some(t0 + w));
        let due = reg.due(t0 + w, w);
        assert_eq!(seqs(&due[0].1), vec![2, 3]);
        // A window of 0 sends every turn.
        reg.live(room, &[m(4)]);
        assert_eq!(reg.due(t0 + w, Duration::ZERO).len(), 1);
        assert_eq!(reg.next_due(w), None);
    }

    #[test]
    fn big_rooms_keep_each_subscriber_once() {
        let mut reg = Registry::default();
        let room = Uuid::nil();
        for k in 0..1000 {
            reg.subscribe(room, k);
            reg.subscribe(room, k);
        }
        assert_eq!(reg.subscriptions, 1000);
        for k in (0..1000).filter(|k| k % 3 == 0) {
            assert!(!reg.unsubscribe(room, k));
        }
        reg.subscribe(room, 3);
        let mut left = reg.rooms[&room].subs.clone();
        left.sort_unstable();
        let mut want: Vec<usize> = (0..1000).filter(|k| k % 3 != 0).collect();
        want.push(3);
        want.sort_unstable();
        assert_eq!(left, want);
        assert_eq!(reg.subscriptions, want.len());
        for k in want {
            reg.unsubscribe(room, k);
        }
        assert!(reg.rooms.is_empty());
        assert_eq!(reg.subscriptions, 0);
    }
}
