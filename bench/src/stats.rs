//! What a run measures: HDR latency histograms and counters, and their merging
//! across threads and child processes (seq tracking is in `track.rs`).

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// A latency histogram in microseconds (1 µs .. 10 min, 3 significant digits).
#[derive(Clone, Debug)]
pub struct Hist(pub Histogram<u64>);

impl Default for Hist {
    fn default() -> Hist {
        Hist(Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds"))
    }
}

impl Hist {
    /// Records one value (clamped into range: a 0 µs latency is recorded as 1 µs).
    pub fn record(&mut self, us: u64) {
        self.0.saturating_record(us.max(1));
    }

    /// Adds another histogram into this one.
    pub fn merge(&mut self, other: &Hist) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.0.add(&other.0);
    }

    /// Number of recorded values.
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// Value at a percentile (0..=100), in µs; 0 when empty.
    pub fn pct(&self, p: f64) -> u64 {
        if self.0.is_empty() {
            0
        } else {
            self.0.value_at_percentile(p)
        }
    }
}

// Histograms cross process boundaries as (value, count) pairs of the non-empty buckets:
// far smaller than the raw counts array and needs no extra encoding crate.
impl Serialize for Hist {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let pairs: Vec<(u64, u64)> = self
            .0
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect();
        pairs.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Hist {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Hist, D::Error> {
        let pairs = Vec::<(u64, u64)>::deserialize(d)?;
        let mut h = Hist::default();
        for (v, c) in pairs {
            h.0.saturating_record_n(v, c);
        }
        Ok(h)
    }
}

/// Live counters one driver thread updates and the progress line reads.
#[derive(Default, Debug)]
pub struct Live {
    /// Sockets open and upgraded right now.
    pub open: AtomicU64,
    /// `send_message` frames written.
    pub sent: AtomicU64,
    /// `message_ack`s received.
    pub acked: AtomicU64,
    /// Messages received by tracking sockets.
    pub delivered: AtomicU64,
    /// Error frames, failed connects and unexpected closes.
    pub errors: AtomicU64,
    /// Reconnects (scheduled drops and server closes).
    pub reconnects: AtomicU64,
    /// Typing events received.
    pub typing: AtomicU64,
    /// Completed churn cycles.
    pub cycles: AtomicU64,
    /// Largest send→receive latency since the last progress line (µs).
    pub lat_max: AtomicU64,
}

/// Number of values in a progress snapshot (see [`Live::snapshot`]).
pub const LIVE_FIELDS: usize = 9;

impl Live {
    /// Adds `n` to a counter.
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// Subtracts `n` from a gauge.
    pub fn sub(c: &AtomicU64, n: u64) {
        c.fetch_sub(n, Ordering::Relaxed);
    }

    /// The counters in a fixed order; resets `lat_max` (it is per progress interval).
    pub fn snapshot(&self) -> [u64; LIVE_FIELDS] {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            r(&self.open),
            r(&self.sent),
            r(&self.acked),
            r(&self.delivered),
            r(&self.errors),
            r(&self.reconnects),
            r(&self.typing),
            r(&self.cycles),
            self.lat_max.swap(0, Ordering::Relaxed),
        ]
    }
}

/// Sums snapshots (the last field, a maximum, is maxed).
pub fn merge_snapshots(a: &mut [u64; LIVE_FIELDS], b: &[u64; LIVE_FIELDS]) {
    for i in 0..LIVE_FIELDS - 1 {
        a[i] += b[i];
    }
    a[LIVE_FIELDS - 1] = a[LIVE_FIELDS - 1].max(b[LIVE_FIELDS - 1]);
}

/// Plain counters of a run; merged by summing.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Counters {
    /// Sockets that completed the upgrade during setup.
    pub connected: u64,
    /// TCP connects that failed or timed out.
    pub connect_failed: u64,
    /// Upgrades answered with something other than 101.
    pub upgrade_failed: u64,
    /// Sockets that joined their room during setup.
    pub joined: u64,
    /// `join_room` answered with an error or not answered in time.
    pub join_failed: u64,
    /// `send_message` frames written.
    pub sent: u64,
    /// `message_ack`s received.
    pub acked: u64,
    /// Sends answered with an `error` frame (nothing stored).
    pub send_rejected: u64,
    /// Sends still unacknowledged when the drain timed out.
    pub unacked: u64,
    /// Messages received by tracking sockets (history and live).
    pub delivered: u64,
    /// Messages that came in a `history` frame.
    pub via_history: u64,
    /// `history` frames received.
    pub histories: u64,
    /// `history` frames with `has_more` (the rest followed as batches).
    pub histories_more: u64,
    /// WebSocket frames received.
    pub frames_in: u64,
    /// Bytes received on upgraded sockets.
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// `error` frames received.
    pub error_frames: u64,
    /// Sockets the server closed (close frame or EOF) when we did not ask.
    pub server_closed: u64,
    /// Reconnects done (planned drops and after server closes).
    pub reconnects: u64,
    /// Typing events written.
    pub typing_sent: u64,
    /// Typing events received.
    pub typing_recv: u64,
    /// Presence, user_joined and user_left events received.
    pub presence_recv: u64,
    /// Churn cycles completed (connect, join, leave, close).
    pub cycles: u64,
    /// Churn cycles that failed somewhere.
    pub cycles_failed: u64,
    /// Churn ticks skipped because every churn slot was busy.
    pub cycles_skipped: u64,
    /// Largest lag between a scheduled send and the moment it was written (µs).
    pub send_lag_max_us: u64,
    /// Tracked (receiver, room) pairs checked at the end.
    pub tracked: u64,
    /// Correctness: messages (seq <= the room's last acked seq) a receiver never got.
    pub lost: u64,
    /// Correctness: messages a receiver got more than once.
    pub duplicated: u64,
    /// Correctness: messages that arrived after a later seq of the same room.
    pub out_of_order: u64,
    /// Correctness: jumps forward in a receiver's seq stream.
    pub gaps: u64,
    /// Server fault: messages of a room the receiving socket did not join (any socket:
    /// receivers, and senders, typers and churners too).
    pub wrong_room: u64,
    /// Reconnects that failed (a refused connect or upgrade) after setup.
    pub reconnect_failed: u64,
    /// Server fault: frames that could not be parsed (not a JSON event, a known event
    /// with malformed data, or broken WebSocket framing).
    pub bad_frames: u64,
    /// Frames carrying messages (`new_message`, `new_message_batch`, `history`)
    /// received by tracking sockets.
    pub message_frames: u64,
    /// Text frames of every kind received by tracking sockets.
    pub receiver_data_frames: u64,
    /// Server fault: acked seqs of a room that were acked more than once (two sends
    /// stored under one seq).
    pub ack_dup_seqs: u64,
    /// Server fault: seqs in 1..max acked seq of a room that no ack carried (beyond
    /// the room's unacked sends, which may have taken them).
    pub ack_seq_holes: u64,
    /// (watcher, typing user) pairs whose typing events were checked.
    pub typing_checked: u64,
    /// Server fault: typing starts a watcher should have seen and did not.
    pub typing_missed_starts: u64,
    /// Server fault: typing stops a watcher should have seen and did not.
    pub typing_missed_stops: u64,
    /// Server fault: typing events from a user who is not typing in the watcher's
    /// room (a non-member, another room, or the watcher's own user).
    pub typing_foreign: u64,
    /// Server fault: typing events beyond those sent (a stop after a last start,
    /// from a disconnect or the 6 s timeout, is allowed).
    pub typing_repeated: u64,
}

impl Counters {
    /// Adds another set (send_lag_max_us is a maximum).
    pub fn merge(&mut self, o: &Counters) {
        macro_rules! sum {
            ($($f:ident),*) => { $( self.$f += o.$f; )* };
        }
        sum!(
            connected,
            connect_failed,
            upgrade_failed,
            joined,
            join_failed,
            sent,
            acked,
            send_rejected,
            unacked,
            delivered,
            via_history,
            histories,
            histories_more,
            frames_in,
            bytes_in,
            bytes_out,
            error_frames,
            server_closed,
            reconnects,
            typing_sent,
            typing_recv,
            presence_recv,
            cycles,
            cycles_failed,
            cycles_skipped,
            tracked,
            lost,
            duplicated,
            out_of_order,
            gaps,
            wrong_room,
            reconnect_failed,
            bad_frames,
            message_frames,
            receiver_data_frames,
            ack_dup_seqs,
            ack_seq_holes,
            typing_checked,
            typing_missed_starts,
            typing_missed_stops,
            typing_foreign,
            typing_repeated
        );
        self.send_lag_max_us = self.send_lag_max_us.max(o.send_lag_max_us);
    }

    /// Sum of the per-receiver stream counters that must stay 0.
    pub fn violations(&self) -> u64 {
        self.lost + self.duplicated + self.out_of_order + self.gaps
    }

    /// Sum of the typing counters that must stay 0.
    pub fn typing_violations(&self) -> u64 {
        self.typing_missed_starts
            + self.typing_missed_stops
            + self.typing_foreign
            + self.typing_repeated
    }
}

/// Everything a driver thread (or a whole child process) reports at the end.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Stats {
    /// Counters.
    pub c: Counters,
    /// Send → receive latency of every delivery.
    pub latency: Hist,
    /// Send → `message_ack` latency.
    pub ack: Hist,
    /// TCP connect start → `101`.
    pub connect: Hist,
    /// `join_room` → `joined_room`.
    pub join: Hist,
    /// Drop → `joined_room` again (reconnect scenario).
    pub reconnect: Hist,
    /// Whole churn cycle: connect, join, leave, close.
    pub cycle: Hist,
    /// typing_start/stop written → `typing` received.
    pub typing: Hist,
    /// `error` frames by code.
    pub error_codes: BTreeMap<String, u64>,
    /// Server-initiated closes by close code (0 = EOF without a close frame).
    pub close_codes: BTreeMap<u16, u64>,
    /// Unix µs of the first and last send written (0 = none).
    pub first_send_us: u64,
    /// See `first_send_us`.
    pub last_send_us: u64,
    /// Unix µs of the last ack received.
    pub last_ack_us: u64,
    /// Unix µs of the first and last delivery.
    pub first_deliver_us: u64,
    /// See `first_deliver_us`.
    pub last_deliver_us: u64,
    /// Unix µs when setup (connect + join) started and ended.
    pub setup_start_us: u64,
    /// See `setup_start_us`.
    pub setup_end_us: u64,
    /// Typing events written per room (to compute how many were expected).
    pub typing_sent_by_room: Vec<u64>,
    /// A few examples of violations, for the report.
    pub samples: Vec<String>,
    /// Acked seqs per room, as sorted inclusive ranges (per driver; concatenated by
    /// `merge`, checked by `checks::acks`).
    pub acked_ranges: Vec<Vec<(u64, u64)>>,
    /// Per room, the wrapping sum of `checks::ack_digest` over the acks (summed by `merge`).
    pub ack_digests: Vec<u64>,
    /// Seqs of system entries seen per room, as ranges (per driver, concatenated).
    pub system_ranges: Vec<Vec<(u64, u64)>>,
    /// Sends per room that were never acked (lost socket or drain timeout): they may
    /// have been stored, so they excuse as many holes in the acked seqs.
    pub unacked_by_room: Vec<u64>,
    /// Per-interval figures (`--interval-secs`, soak), indexed from the start.
    pub intervals: Vec<IntervalStats>,
    /// The reconnect storm's catch-up (`storm`).
    #[serde(default)]
    pub storm: crate::storm::StormStats,
}

/// What happened in one interval of a run (by the time of the event).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct IntervalStats {
    /// Send → receive latency of the deliveries to steady receivers (not rejoiners)
    /// that arrived in the interval.
    pub latency: Hist,
    /// Messages delivered to tracking sockets.
    pub delivered: u64,
    /// Messages sent.
    pub sent: u64,
}

fn min_nz(a: u64, b: u64) -> u64 {
    match (a, b) {
        (0, x) | (x, 0) => x,
        (x, y) => x.min(y),
    }
}

impl Stats {
    /// Merges another thread's or process's stats into these.
    pub fn merge(&mut self, o: &Stats) {
        self.c.merge(&o.c);
        self.latency.merge(&o.latency);
        self.ack.merge(&o.ack);
        self.connect.merge(&o.connect);
        self.join.merge(&o.join);
        self.reconnect.merge(&o.reconnect);
        self.cycle.merge(&o.cycle);
        self.typing.merge(&o.typing);
        for (k, v) in &o.error_codes {
            *self.error_codes.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.close_codes {
            *self.close_codes.entry(*k).or_default() += v;
        }
        self.first_send_us = min_nz(self.first_send_us, o.first_send_us);
        self.last_send_us = self.last_send_us.max(o.last_send_us);
        self.last_ack_us = self.last_ack_us.max(o.last_ack_us);
        self.first_deliver_us = min_nz(self.first_deliver_us, o.first_deliver_us);
        self.last_deliver_us = self.last_deliver_us.max(o.last_deliver_us);
        self.setup_start_us = min_nz(self.setup_start_us, o.setup_start_us);
        self.setup_end_us = self.setup_end_us.max(o.setup_end_us);
        if self.typing_sent_by_room.len() < o.typing_sent_by_room.len() {
            self.typing_sent_by_room
                .resize(o.typing_sent_by_room.len(), 0);
        }
        for (a, b) in self
            .typing_sent_by_room
            .iter_mut()
            .zip(&o.typing_sent_by_room)
        {
            *a += b;
        }
        for s in &o.samples {
            if self.samples.len() < 20 {
                self.samples.push(s.clone());
            }
        }
        if self.acked_ranges.len() < o.acked_ranges.len() {
            self.acked_ranges.resize(o.acked_ranges.len(), Vec::new());
        }
        for (a, b) in self.acked_ranges.iter_mut().zip(&o.acked_ranges) {
            a.extend_from_slice(b);
        }
        if self.ack_digests.len() < o.ack_digests.len() {
            self.ack_digests.resize(o.ack_digests.len(), 0);
        }
        for (a, b) in self.ack_digests.iter_mut().zip(&o.ack_digests) {
            *a = a.wrapping_add(*b);
        }
        if self.system_ranges.len() < o.system_ranges.len() {
            self.system_ranges.resize(o.system_ranges.len(), Vec::new());
        }
        for (a, b) in self.system_ranges.iter_mut().zip(&o.system_ranges) {
            a.extend_from_slice(b);
        }
        if self.unacked_by_room.len() < o.unacked_by_room.len() {
            self.unacked_by_room.resize(o.unacked_by_room.len(), 0);
        }
        for (a, b) in self.unacked_by_room.iter_mut().zip(&o.unacked_by_room) {
            *a += b;
        }
        if self.intervals.len() < o.intervals.len() {
            self.intervals
                .resize_with(o.intervals.len(), IntervalStats::default);
        }
        for (a, b) in self.intervals.iter_mut().zip(&o.intervals) {
            a.latency.merge(&b.latency);
            a.delivered += b.delivered;
            a.sent += b.sent;
        }
        self.storm.merge(&o.storm);
    }

    /// The index of the interval `now` falls in, created on demand (`None` when
    /// intervals are off or `now` is before the start).
    pub fn interval(&mut self, start_us: u64, every_us: u64, now: u64) -> Option<usize> {
        if every_us == 0 || start_us == 0 || now < start_us {
            return None;
        }
        let i = ((now - start_us) / every_us) as usize;
        if i >= 100_000 {
            return None;
        }
        if self.intervals.len() <= i {
            self.intervals.resize_with(i + 1, IntervalStats::default);
        }
        Some(i)
    }

    /// Keeps a violation example (bounded).
    pub fn sample(&mut self, s: impl FnOnce() -> String) {
        if self.samples.len() < 20 {
            self.samples.push(s());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_survive_json() {
        let mut s = Stats::default();
        for v in [5, 50, 500, 5000] {
            s.latency.record(v);
        }
        s.c.lost = 1;
        let back: Stats = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back.latency.count(), 4);
        assert_eq!(back.latency.pct(100.0), s.latency.pct(100.0));
        let mut m = Stats::default();
        m.merge(&back);
        m.merge(&back);
        assert_eq!((m.latency.count(), m.c.lost, m.c.violations()), (8, 2, 2));
    }
}
