//! Gap fetches that failed (database down, job queue full) and wait for a later sweep:
//! the room's live messages wait meanwhile, so nothing is delivered out of order.

use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long a failed gap fetch waits before it is tried again.
pub const RETRY_AFTER: Duration = Duration::from_millis(500);

/// The gap fetches to retry on one loop.
#[derive(Default)]
pub struct Retries {
    /// (room, seq the fetch starts after, not before).
    due: Vec<(Uuid, i64, Instant)>,
}

impl Retries {
    /// Retries the fetch of `room` after `after` once [`RETRY_AFTER`] has passed.
    pub fn later(&mut self, room: Uuid, after: i64, now: Instant) {
        self.due.push((room, after, now + RETRY_AFTER));
    }

    /// Takes the retries due at `now`: (room, after).
    pub fn take_due(&mut self, now: Instant) -> Vec<(Uuid, i64)> {
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.due)
            .into_iter()
            .partition(|r| r.2 <= now);
        self.due = later;
        due.into_iter()
            .map(|(room, after, _)| (room, after))
            .collect()
    }

    /// Retries waiting.
    pub fn len(&self) -> usize {
        self.due.len()
    }

    /// True when no retry waits.
    pub fn is_empty(&self) -> bool {
        self.due.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_is_due_only_after_its_pause_and_taken_once() {
        let room = Uuid::from_u128(9);
        let t0 = Instant::now();
        let mut r = Retries::default();
        r.later(room, 41, t0);
        assert!(r.take_due(t0 + Duration::from_millis(499)).is_empty());
        assert_eq!(r.len(), 1);
        assert_eq!(r.take_due(t0 + RETRY_AFTER), vec![(room, 41)]);
        assert!(r.is_empty());
        assert!(r.take_due(t0 + RETRY_AFTER * 4).is_empty());
    }
}
