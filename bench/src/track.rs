//! Per (receiver, room) sequence tracking: what makes the lost, duplicated,
//! out-of-order and gap counters.

/// What one message did to a [`Track`].
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    /// The next seq, or a later one after a gap (a fresh message either way).
    New,
    /// A seq that was missing and arrived late.
    Late,
    /// A seq seen before.
    Duplicate,
}

/// Per (receiver, room) sequence tracking in a few words: the highest seq seen and the
/// ranges below it that are still missing.
#[derive(Clone, Debug, Default)]
pub struct Track {
    /// Highest seq seen (0 = none).
    pub last: u64,
    /// Missing seqs below `last`, as inclusive ranges in ascending order.
    holes: Vec<(u64, u64)>,
    /// Forward jumps.
    pub gaps: u64,
    /// Late arrivals.
    pub late: u64,
    /// Repeats.
    pub dups: u64,
}

impl Track {
    /// Accounts for one received seq.
    pub fn see(&mut self, seq: u64) -> Seen {
        if seq == self.last + 1 {
            self.last = seq;
            return Seen::New;
        }
        if seq > self.last {
            self.holes.push((self.last + 1, seq - 1));
            self.last = seq;
            self.gaps += 1;
            return Seen::New;
        }
        match self.holes.iter().position(|&(a, b)| a <= seq && seq <= b) {
            Some(i) => {
                let (a, b) = self.holes[i];
                match (seq == a, seq == b) {
                    (true, true) => {
                        self.holes.remove(i);
                    }
                    (true, false) => self.holes[i].0 = seq + 1,
                    (false, true) => self.holes[i].1 = seq - 1,
                    (false, false) => {
                        self.holes[i].1 = seq - 1;
                        self.holes.insert(i + 1, (seq + 1, b));
                    }
                }
                self.late += 1;
                Seen::Late
            }
            None => {
                self.dups += 1;
                Seen::Duplicate
            }
        }
    }

    /// Seqs in `base+1 ..= upto` never received, where `base` is where tracking began.
    pub fn missing(&self, upto: u64) -> u64 {
        let beyond = upto.saturating_sub(self.last);
        let holes: u64 = self
            .holes
            .iter()
            .filter(|&&(a, _)| a <= upto)
            .map(|&(a, b)| b.min(upto) - a + 1)
            .sum();
        beyond + holes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_stream_is_clean() {
        let mut t = Track::default();
        for s in 1..=10 {
            assert_eq!(t.see(s), Seen::New);
        }
        assert_eq!((t.gaps, t.late, t.dups, t.missing(10)), (0, 0, 0, 0));
        assert_eq!(t.missing(12), 2);
    }

    #[test]
    fn gaps_late_and_duplicates() {
        let mut t = Track::default();
        t.see(1);
        t.see(5); // gap: 2..=4 missing
        assert_eq!(t.missing(5), 3);
        assert_eq!(t.see(3), Seen::Late);
        assert_eq!(t.see(3), Seen::Duplicate);
        assert_eq!(t.see(5), Seen::Duplicate);
        assert_eq!(t.missing(5), 2);
        assert_eq!(t.see(2), Seen::Late);
        assert_eq!(t.see(4), Seen::Late);
        assert_eq!((t.gaps, t.late, t.dups, t.missing(5)), (1, 3, 2, 0));
        assert_eq!(t.missing(4), 0);
    }
}
