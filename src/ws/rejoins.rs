//! What a join from a position missed, read once and shared by the joins of the room
//! from the same position.
//!
//! After a reconnect storm every socket of a room rejoins with the same
//! `last_seen_seq`; reading and encoding the same rows once per socket made the
//! catch-up cost grow with the sockets rather than the rooms. A read is kept for a
//! moment under `(room, after)` and reused by a later join whose check found the room
//! no further than the read covers; one that found it further reads only the rows past
//! what is kept. Rows are immutable snapshots of a gapless stream: any rows
//! `(after, x]` are a correct start, and the socket takes everything past `x` from the
//! room's stream as any join does.

use crate::base::model::Message;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long a read is offered to later joins.
const KEEP_FOR: Duration = Duration::from_secs(2);
/// Most rows kept over all reads (bounds memory whatever positions clients claim).
const MAX_ROWS: usize = 250_000;

/// The messages a join from a position missed, ascending: the first page goes in the
/// `history` frame, the rest follow it as catch-up batches.
pub struct JoinHistory {
    /// Messages after `after`, ascending, contiguous.
    pub rows: Vec<Arc<Message>>,
    /// Whether more were missed than `rows` holds.
    pub more: bool,
    /// The `last_seen_seq` it answers.
    pub after: i64,
    /// Set when messages after `last_seen_seq` were removed by retention: the oldest
    /// seq still stored.
    pub horizon: Option<i64>,
    /// The frames made of `rows` (history page, then catch-up batches), encoded by the
    /// first loop that sends them and shared by every socket given this read.
    pub frames: OnceLock<Vec<Arc<[u8]>>>,
}

impl JoinHistory {
    /// A read's rows.
    pub fn new(
        after: i64,
        rows: Vec<Arc<Message>>,
        more: bool,
        horizon: Option<i64>,
    ) -> JoinHistory {
        JoinHistory {
            rows,
            more,
            after,
            horizon,
            frames: OnceLock::new(),
        }
    }

    /// The last seq the rows reach.
    pub fn reach(&self) -> Option<i64> {
        self.rows.last().map(|m| m.seq)
    }
}

/// A kept read: the room's last seq its check found, and when it was read.
struct Kept {
    read: Arc<JoinHistory>,
    head: i64,
    at: Instant,
}

/// What is kept for `(room, after)`.
pub enum Found {
    /// A read that covers the room up to the head asked for: use it as it is.
    Covers(Arc<JoinHistory>),
    /// A read that stops short of it (and was not cut by its limit): read only past it.
    Short(Arc<JoinHistory>),
    /// Nothing usable.
    None,
}

/// The kept reads of a node.
#[derive(Default)]
pub struct Rejoins {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    kept: HashMap<(Uuid, i64), Kept>,
    rows: usize,
    swept: Option<Instant>,
}

impl Rejoins {
    /// The read kept for joins of `room` from `after` whose check found `head`.
    pub fn find(&self, room: Uuid, after: i64, head: i64) -> Found {
        let Ok(inner) = self.inner.lock() else {
            return Found::None;
        };
        match inner.kept.get(&(room, after)) {
            Some(k) if k.at.elapsed() < KEEP_FOR => {
                if k.head >= head {
                    Found::Covers(k.read.clone())
                } else if !k.read.more && !k.read.rows.is_empty() {
                    Found::Short(k.read.clone())
                } else {
                    Found::None
                }
            }
            _ => Found::None,
        }
    }

    /// Offers a read (its check found `head`) to later joins of `room` from `after`.
    pub fn keep(&self, room: Uuid, after: i64, head: i64, read: &Arc<JoinHistory>) {
        let Ok(mut guard) = self.inner.lock() else {
            return;
        };
        let inner = &mut *guard;
        let now = Instant::now();
        if inner
            .swept
            .is_none_or(|t| now.duration_since(t) >= KEEP_FOR / 2)
        {
            inner.swept = Some(now);
            let mut rows = 0;
            inner.kept.retain(|_, k| {
                let keep = now.duration_since(k.at) < KEEP_FOR;
                rows += if keep { k.read.rows.len() } else { 0 };
                keep
            });
            inner.rows = rows;
        }
        if let Some(old) = inner.kept.remove(&(room, after)) {
            inner.rows -= old.read.rows.len();
        }
        if inner.rows + read.rows.len() > MAX_ROWS {
            return;
        }
        inner.rows += read.rows.len();
        inner.kept.insert(
            (room, after),
            Kept {
                read: read.clone(),
                head,
                at: now,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(after: i64, upto: i64, more: bool) -> Arc<JoinHistory> {
        let rows = (after + 1..=upto)
            .map(|seq| {
                Arc::new(Message {
                    seq,
                    ..Default::default()
                })
            })
            .collect();
        Arc::new(JoinHistory::new(after, rows, more, None))
    }

    #[test]
    fn a_read_serves_joins_it_covers_and_is_extended_for_the_others() {
        let r = Rejoins::default();
        let room = Uuid::from_u128(7);
        assert!(matches!(r.find(room, 10, 20), Found::None));
        r.keep(room, 10, 20, &read(10, 21, false));
        assert!(matches!(r.find(room, 10, 20), Found::Covers(h) if h.reach() == Some(21)));
        assert!(matches!(r.find(room, 10, 19), Found::Covers(_)));
        assert!(matches!(r.find(room, 10, 25), Found::Short(h) if h.reach() == Some(21)));
        assert!(
            matches!(r.find(room, 11, 20), Found::None),
            "another position"
        );
        assert!(
            matches!(r.find(Uuid::nil(), 10, 20), Found::None),
            "another room"
        );
        // A read cut by its limit is not extended: the rest is a catch-up's.
        r.keep(room, 10, 30, &read(10, 20, true));
        assert!(matches!(r.find(room, 10, 31), Found::None));
        assert!(matches!(r.find(room, 10, 30), Found::Covers(_)));
        assert_eq!(r.inner.lock().unwrap().rows, 10, "replaced, not added");
    }

    #[test]
    fn keeps_at_most_max_rows() {
        let r = Rejoins::default();
        let big = read(0, MAX_ROWS as i64 - 5, false);
        r.keep(Uuid::from_u128(1), 0, 1, &big);
        r.keep(Uuid::from_u128(2), 0, 10, &read(0, 10, false));
        assert!(matches!(r.find(Uuid::from_u128(2), 0, 10), Found::None));
        r.keep(Uuid::from_u128(3), 0, 5, &read(0, 5, false));
        assert!(matches!(r.find(Uuid::from_u128(3), 0, 5), Found::Covers(_)));
    }
}
