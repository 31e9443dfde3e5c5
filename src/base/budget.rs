//! A byte budget shared by the threads of a node (uploads): a token bucket refilled at a
//! sustained rate up to a burst. A lone transfer within the burst goes at full speed;
//! many at once share the rate. Waiting is a reservation: a take debits the bucket at
//! once (it may go negative) and sleeps until the debt is repaid, so concurrent takers
//! are served in the order they asked and none is starved. Only worker threads take:
//! an event loop must never sleep.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A token bucket of bytes (`rate` 0 = unlimited).
pub struct Budget {
    rate: f64,
    burst: f64,
    /// Bytes available (negative: owed by the takers waiting) as of the instant.
    state: Mutex<(f64, Instant)>,
}

impl Budget {
    /// A full bucket of `burst` bytes refilled at `rate` bytes a second.
    pub fn new(rate: u64, burst: u64) -> Budget {
        Budget {
            rate: rate as f64,
            burst: burst.max(1) as f64,
            state: Mutex::new((burst as f64, Instant::now())),
        }
    }

    /// Debits `n` bytes and answers how long the taker must wait before using them.
    pub fn reserve(&self, n: usize) -> Duration {
        if self.rate <= 0.0 {
            return Duration::ZERO;
        }
        let Ok(mut s) = self.state.lock() else {
            return Duration::ZERO;
        };
        let now = Instant::now();
        let refilled = s.0 + now.duration_since(s.1).as_secs_f64() * self.rate;
        s.0 = refilled.min(self.burst) - n as f64;
        s.1 = now;
        if s.0 >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-s.0 / self.rate)
        }
    }

    /// Takes `n` bytes, sleeping the calling (worker) thread until they are available.
    pub fn take(&self, n: usize) {
        let wait = self.reserve(n);
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_burst_is_free_then_takers_share_the_rate() {
        let b = Budget::new(1000, 500);
        assert_eq!(b.reserve(500), Duration::ZERO, "the burst");
        let first = b.reserve(100);
        let second = b.reserve(100);
        assert!(first > Duration::from_millis(90) && first <= Duration::from_millis(100));
        assert!(second > Duration::from_millis(190) && second <= Duration::from_millis(200));
        let none = Budget::new(0, 1);
        assert_eq!(none.reserve(1 << 30), Duration::ZERO, "0 = unlimited");
    }
}
