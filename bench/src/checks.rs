//! The end-of-run checks that are not per-receiver seq tracking (`track.rs`): acked
//! seqs against what a room must hold, the database against the acks, typing events
//! against what typers sent, the memory baseline and growth over a soak. Pure
//! functions over figures, so each can be shown to fail on a broken input (see the
//! tests at the bottom).

/// Sorted, de-duplicated inclusive ranges of `seqs`, and how many seqs were repeats.
pub fn compress(seqs: &mut [u64]) -> (Vec<(u64, u64)>, u64) {
    seqs.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    let mut dups = 0;
    for &s in seqs.iter() {
        match out.last_mut() {
            Some((_, b)) if s == *b => dups += 1,
            Some((_, b)) if s == *b + 1 => *b = s,
            _ => out.push((s, s)),
        }
    }
    (out, dups)
}

/// What the acked seqs of one room say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AckCheck {
    /// Distinct seqs acked.
    pub unique: u64,
    /// Seqs acked more than once (counted once per extra ack).
    pub dups: u64,
    /// Seqs in 1..=max never acked.
    pub holes: u64,
    /// Highest seq acked (0 = none).
    pub max: u64,
}

/// Checks one room's acked seqs, given as ranges from several drivers (each already
/// free of repeats inside itself): they must be unique and cover exactly 1..=max.
pub fn acks(ranges: &[(u64, u64)]) -> AckCheck {
    let mut r = ranges.to_vec();
    r.sort_unstable();
    let mut c = AckCheck::default();
    // Highest seq covered so far (ranges are sorted by start).
    let mut covered = 0u64;
    for &(a, b) in &r {
        let mut a = a;
        if a == 0 {
            // seq 0 is never valid: count it as a hole.
            c.holes += 1;
            if b == 0 {
                continue;
            }
            a = 1;
        }
        if a > covered {
            c.unique += b - a + 1;
        } else {
            c.dups += b.min(covered) - a + 1;
            if b > covered {
                c.unique += b - covered;
            }
        }
        covered = covered.max(b);
    }
    c.max = covered;
    c.holes += covered - c.unique;
    c
}

/// [`acks`], where the room's stream also holds system entries (membership changes)
/// at `system` seqs: those are not holes.
pub fn acks_beside(ranges: &[(u64, u64)], system: &[(u64, u64)]) -> AckCheck {
    let mut c = acks(ranges);
    let mut sys: Vec<u64> = system.iter().flat_map(|&(a, b)| a..=b).collect();
    sys.sort_unstable();
    sys.dedup();
    let acked = |s: u64| ranges.iter().any(|&(a, b)| a <= s && s <= b);
    let excused = sys
        .iter()
        .filter(|&&s| s >= 1 && s <= c.max && !acked(s))
        .count() as u64;
    c.holes = c.holes.saturating_sub(excused);
    c
}

/// One room as the database holds it: `SELECT count(*), count(DISTINCT seq),
/// min(seq), max(seq) FROM messages WHERE room_id = ...`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DbRoom {
    /// Message rows (system entries left out: they are no one's send).
    pub rows: u64,
    /// All rows, system entries included.
    pub entries: u64,
    /// Distinct seqs.
    pub distinct: u64,
    /// Smallest seq (0 when no rows).
    pub min: u64,
    /// Largest seq (0 when no rows).
    pub max: u64,
}

/// What the database check found, summed over rooms.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DbCheck {
    /// Rooms checked.
    pub rooms: u64,
    /// Message rows in those rooms.
    pub rows: u64,
    /// Acked messages the database does not hold (fewer rows than acks, or an acked
    /// seq above the highest stored).
    pub missing: u64,
    /// Rows beyond the acked messages and the unacked sends that may have been stored.
    pub extra: u64,
    /// Rows under an acked seq whose content is not what the send with their
    /// client_msg_id sent (`sent_content`).
    pub wrong_content: u64,
    /// Rooms whose rows under the acked seqs do not carry exactly the (seq,
    /// client_msg_id) pairs the acks carried (`ack_digest` sums differ): a message
    /// stored under another seq than the one acked, or another message under it.
    pub wrong_ack_pairs: u64,
    /// Seqs missing from 1..=max of a room, or a first seq other than 1.
    pub seq_gaps: u64,
    /// Examples, for the report.
    pub samples: Vec<String>,
}

impl DbCheck {
    /// Sum of the counters that must stay 0.
    pub fn failures(&self) -> u64 {
        self.missing + self.extra + self.wrong_content + self.wrong_ack_pairs + self.seq_gaps
    }
}

/// Compares one room's rows with its acks (`unacked`: sends never acked, which may or
/// may not have been stored). The entries must be exactly seqs 1..=n, and the message
/// rows between the acked count and the acked count plus the unacked sends.
pub fn db_room(out: &mut DbCheck, name: &str, db: DbRoom, acked: AckCheck, unacked: u64) {
    out.rooms += 1;
    out.rows += db.rows;
    let before = out.failures();
    let entries = db.entries.max(db.rows);
    if entries > 0 {
        // Distinct seqs must be exactly 1..=max.
        out.seq_gaps += u64::from(db.min != 1) + db.max.saturating_sub(db.distinct);
    }
    let missing = acked
        .unique
        .saturating_sub(db.rows)
        .max(acked.max.saturating_sub(db.max));
    out.missing += missing;
    out.extra += db.rows.saturating_sub(acked.unique + unacked);
    if out.failures() > before && out.samples.len() < 10 {
        out.samples.push(format!(
            "room {name}: {} rows, {} distinct seqs {}..={}; {} acked (max seq {}), {} unacked",
            db.rows, db.distinct, db.min, db.max, acked.unique, acked.max, unacked
        ));
    }
}

/// A 64-bit digest of one (seq, client_msg_id) pair (FNV-1a: the same in every process
/// of a run); a room's acks are summed (wrapping) and compared with the sum over the
/// rows the database holds under those seqs.
pub fn ack_digest(seq: u64, client_msg_id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seq.to_le_bytes().iter().chain(client_msg_id.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The content a sender sent with `client_msg_id` (`<socket>-<n>-<unix µs>`), padded to
/// `size` bytes (see `roles::send_one`); `None` for an id no sender makes.
pub fn sent_content(client_msg_id: &str, size: usize) -> Option<String> {
    let mut parts = client_msg_id.split('-');
    let (id, n, t) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let mut s = format!("t={t} s={id} n={n} ");
    let pad = size.saturating_sub(s.len());
    s.extend(std::iter::repeat_n('x', pad));
    Some(s)
}

/// Typing events one watcher got from one user, against what that user's typers in
/// the watcher's room sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TypingCheck {
    /// Starts sent but not received.
    pub missed_starts: u64,
    /// Stops sent but not received.
    pub missed_stops: u64,
    /// Events received beyond those sent.
    pub repeated: u64,
}

/// Checks `(starts, stops)` received against `(starts, stops)` sent. One extra stop
/// is allowed when the last event sent was a start: the server turns a start off
/// when its socket closes or after 6 s.
pub fn typing(sent: (u64, u64), got: (u64, u64)) -> TypingCheck {
    let allowed_stops = sent.1 + u64::from(sent.0 > sent.1);
    TypingCheck {
        missed_starts: sent.0.saturating_sub(got.0),
        missed_stops: sent.1.saturating_sub(got.1),
        repeated: got.0.saturating_sub(sent.0) + got.1.saturating_sub(allowed_stops),
    }
}

/// Whether a series of RSS samples (KiB, oldest first) has settled: the last `n`
/// values lie within `tol_pct` % (and at least 256 KiB) of each other.
pub fn settled(rss_kb: &[u64], n: usize) -> bool {
    const TOL_PCT: u64 = 1;
    if n == 0 || rss_kb.len() < n {
        return false;
    }
    let tail = &rss_kb[rss_kb.len() - n..];
    let (lo, hi) = (
        *tail.iter().min().unwrap_or(&0),
        *tail.iter().max().unwrap_or(&0),
    );
    lo > 0 && hi - lo <= (hi * TOL_PCT / 100).max(256)
}

/// Growth in % from `base` to `end` (0 when there is no base).
pub fn growth_pct(base: f64, end: f64) -> f64 {
    if base <= 0.0 {
        0.0
    } else {
        (end / base - 1.0) * 100.0
    }
}

/// RSS growth per connection in bytes, from a baseline to a later sample (KiB).
pub fn rss_per_conn(base_kb: u64, end_kb: u64, conns: u64) -> f64 {
    if conns == 0 || end_kb == 0 || base_kb == 0 {
        0.0
    } else {
        (end_kb as f64 - base_kb as f64) * 1024.0 / conns as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Each test feeds a clean input (the check passes) and a deliberately broken one
    // (the check must fail): that is how each new check was shown to fail.

    #[test]
    fn system_entries_are_not_holes_and_not_extra_rows() {
        // Seqs 1 and 4 are system entries; 2, 3, 5 acked.
        let c = acks_beside(&[(2, 3), (5, 5)], &[(1, 1), (4, 4)]);
        assert_eq!((c.unique, c.holes, c.max), (3, 0, 5));
        // Without them the same acks have two holes (shown to fail).
        assert_eq!(acks(&[(2, 3), (5, 5)]).holes, 2);
        let mut out = DbCheck::default();
        let db = DbRoom {
            rows: 3,
            entries: 5,
            distinct: 5,
            min: 1,
            max: 5,
        };
        db_room(&mut out, "r", db, c, 0);
        assert_eq!(out.failures(), 0, "{:?}", out.samples);
    }

    #[test]
    fn compress_finds_ranges_and_repeats() {
        let mut v = vec![5, 1, 2, 3, 3, 7, 6, 9];
        assert_eq!(compress(&mut v), (vec![(1, 3), (5, 7), (9, 9)], 1));
        assert_eq!(compress(&mut []), (vec![], 0));
    }

    #[test]
    fn acks_must_be_unique_and_exactly_one_to_n() {
        // Two drivers whose acks interleave: clean.
        let clean = acks(&[(1, 3), (7, 8), (4, 6), (9, 9)]);
        assert_eq!(
            clean,
            AckCheck {
                unique: 9,
                dups: 0,
                holes: 0,
                max: 9
            }
        );
        // Broken: seq 5 acked by two drivers (stored twice under one seq).
        let dup = acks(&[(1, 5), (5, 9)]);
        assert_eq!((dup.dups, dup.holes, dup.unique), (1, 0, 9));
        // Broken: a range inside another.
        assert_eq!(acks(&[(1, 9), (3, 4)]).dups, 2);
        // Broken: seq 4 skipped.
        let hole = acks(&[(1, 3), (5, 9)]);
        assert_eq!((hole.dups, hole.holes, hole.max), (0, 1, 9));
        // Broken: the room did not start at 1.
        assert_eq!(acks(&[(3, 9)]).holes, 2);
        assert_eq!(acks(&[]), AckCheck::default());
    }

    #[test]
    fn database_rows_must_match_the_acks() {
        let acked = acks(&[(1, 10)]);
        let good = DbRoom {
            rows: 10,
            entries: 10,
            distinct: 10,
            min: 1,
            max: 10,
        };
        let mut c = DbCheck::default();
        db_room(&mut c, "r", good, acked, 0);
        assert_eq!((c.failures(), c.rows), (0, 10));
        // Unacked sends may have been stored: up to that many extra rows are fine.
        let mut c = DbCheck::default();
        db_room(
            &mut c,
            "r",
            DbRoom {
                rows: 12,
                entries: 12,
                distinct: 12,
                max: 12,
                ..good
            },
            acked,
            2,
        );
        assert_eq!(c.failures(), 0);

        // Broken: a message stored twice (eleven rows for ten acks).
        let mut c = DbCheck::default();
        db_room(
            &mut c,
            "r",
            DbRoom {
                rows: 11,
                entries: 11,
                distinct: 11,
                max: 11,
                ..good
            },
            acked,
            0,
        );
        assert_eq!(c.extra, 1);
        assert_eq!(c.samples.len(), 1);
        // Broken: seq 7 skipped (rows 1..=6, 8..=11).
        let mut c = DbCheck::default();
        db_room(
            &mut c,
            "r",
            DbRoom {
                rows: 10,
                entries: 10,
                distinct: 10,
                min: 1,
                max: 11,
            },
            acked,
            0,
        );
        assert_eq!(c.seq_gaps, 1);
        // Broken: an acked message not stored.
        let mut c = DbCheck::default();
        db_room(
            &mut c,
            "r",
            DbRoom {
                rows: 9,
                entries: 9,
                distinct: 9,
                min: 1,
                max: 9,
            },
            acked,
            0,
        );
        assert_eq!(c.missing, 1);
        // Broken: an extra row nobody sent.
        let mut c = DbCheck::default();
        db_room(
            &mut c,
            "r",
            DbRoom {
                rows: 11,
                entries: 11,
                distinct: 11,
                min: 1,
                max: 11,
            },
            acked,
            0,
        );
        assert_eq!(c.extra, 1);
        // Broken: numbering starts at 2.
        let mut c = DbCheck::default();
        db_room(
            &mut c,
            "r",
            DbRoom {
                rows: 10,
                entries: 10,
                distinct: 10,
                min: 2,
                max: 11,
            },
            acked,
            1,
        );
        assert_eq!(c.seq_gaps, 2);
    }

    #[test]
    fn the_database_must_hold_what_each_ack_says_was_sent() {
        // What roles::send_one writes for socket 12's message 3 at t=1700, size 32.
        let sent = sent_content("12-3-1700", 32).unwrap();
        assert_eq!(sent, "t=1700 s=12 n=3 xxxxxxxxxxxxxxxx");
        assert_eq!(sent.len(), 32);
        assert_eq!(sent_content("12-3-1700", 4).unwrap(), "t=1700 s=12 n=3 ");
        // Broken: ids no sender makes.
        assert_eq!(sent_content("k7", 32), None);
        assert_eq!(sent_content("1-2-3-4", 32), None);
        // The pairs, summed in any order, must match exactly.
        let acks = [(1, "1-0-5"), (2, "2-0-6"), (3, "1-1-7")];
        let sum = |pairs: &[(u64, &str)]| {
            pairs
                .iter()
                .fold(0u64, |s, (q, id)| s.wrapping_add(ack_digest(*q, id)))
        };
        let mut rows = acks;
        rows.reverse();
        assert_eq!(sum(&acks), sum(&rows));
        // Broken: two messages swapped between their seqs; one under the wrong seq.
        assert_ne!(sum(&acks), sum(&[(1, "2-0-6"), (2, "1-0-5"), (3, "1-1-7")]));
        assert_ne!(sum(&acks), sum(&[(1, "1-0-5"), (2, "2-0-6"), (4, "1-1-7")]));
    }

    #[test]
    fn typing_events_must_all_arrive_once() {
        assert_eq!(typing((5, 5), (5, 5)), TypingCheck::default());
        // A last start may be followed by a stop from the server (close, timeout).
        assert_eq!(typing((5, 4), (5, 5)), TypingCheck::default());
        // Broken: a stop lost, a start lost.
        assert_eq!(typing((5, 5), (5, 4)).missed_stops, 1);
        assert_eq!(typing((5, 5), (4, 5)).missed_starts, 1);
        // Broken: a start relayed twice; a stop nobody sent.
        assert_eq!(typing((5, 5), (6, 5)).repeated, 1);
        assert_eq!(typing((5, 5), (5, 6)).repeated, 1);
        // Broken: everything missing.
        assert_eq!(
            typing((3, 2), (0, 0)),
            TypingCheck {
                missed_starts: 3,
                missed_stops: 2,
                repeated: 0
            }
        );
    }

    #[test]
    fn rss_baseline_waits_for_the_allocator_to_settle() {
        assert!(settled(&[90_000, 100_000, 100_100, 100_200, 100_150], 4));
        // Broken: still growing by ~2 % a sample.
        assert!(!settled(&[100_000, 102_000, 104_000, 106_000], 4));
        // Broken: too few samples, or no server.
        assert!(!settled(&[100_000, 100_000], 4));
        assert!(!settled(&[0, 0, 0, 0], 4));
        // Small servers: 256 KiB of noise is tolerated.
        assert!(settled(&[10_000, 10_200, 10_100, 10_000], 4));
        assert_eq!(rss_per_conn(100_000, 110_000, 1024), 10_000.0);
        assert_eq!(rss_per_conn(0, 110_000, 1024), 0.0);
    }

    #[test]
    fn growth() {
        assert_eq!(growth_pct(100.0, 110.0).round(), 10.0);
        assert_eq!(growth_pct(0.0, 110.0), 0.0);
        assert!(growth_pct(100.0, 90.0) < 0.0);
    }
}
