//! The reconnect storm (`chat-bench storm`): every storm receiver drops at one moment
//! and all rejoin with `last_seen_seq` at another. Per socket, the time from its
//! rejoin to having its room's head at that moment; for the run, the time until the
//! last socket got there and the server's and PostgreSQL's CPU meanwhile (sampled
//! every 200 ms, finer than the once-a-second progress samples).

use crate::client::State;
use crate::driver::{Driver, Tk};
use crate::proc::{Sample, Sampler, cpu_pct};
use crate::stats::{Counters, Hist};
use crate::util::now_us;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the storm measured, per driver (merged like the other stats).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StormStats {
    /// Rejoin start (connect, upgrade, join) → the room's head at that moment
    /// received, per socket.
    pub catchup: Hist,
    /// Sockets the storm dropped.
    pub dropped: u64,
    /// Sockets that rejoined with a known target.
    pub rejoined: u64,
    /// Sockets that reached their target.
    pub caught_up: u64,
    /// Sockets whose room had no sender in their driver: target unknown.
    pub no_target: u64,
    /// Messages missed while away, over every rejoined socket, and the least and most
    /// one socket missed.
    pub missed_sum: u64,
    /// See `missed_sum`.
    pub missed_min: u64,
    /// See `missed_sum`.
    pub missed_max: u64,
    /// Unix µs of the first rejoin.
    pub back_us: u64,
    /// Unix µs the last socket caught up.
    pub last_caught_us: u64,
}

impl StormStats {
    /// Adds another driver's figures.
    pub fn merge(&mut self, o: &StormStats) {
        self.catchup.merge(&o.catchup);
        self.dropped += o.dropped;
        self.missed_min = match (self.rejoined, o.rejoined) {
            (0, _) => o.missed_min,
            (_, 0) => self.missed_min,
            _ => self.missed_min.min(o.missed_min),
        };
        self.rejoined += o.rejoined;
        self.caught_up += o.caught_up;
        self.no_target += o.no_target;
        self.missed_sum += o.missed_sum;
        self.missed_max = self.missed_max.max(o.missed_max);
        self.back_us = match (self.back_us, o.back_us) {
            (0, x) | (x, 0) => x,
            (x, y) => x.min(y),
        };
        self.last_caught_us = self.last_caught_us.max(o.last_caught_us);
    }
}

impl Driver {
    /// The storm: the socket goes without a close frame (as behind a failed balancer
    /// or a cut network) and comes back at `storm_back_ms`.
    pub(crate) fn storm_drop(&mut self, slot: usize) {
        let c = &mut self.conns[slot];
        c.storm_last = c.track.last;
        c.t_reconnect = 0;
        self.stats.storm.dropped += 1;
        self.close_socket(slot);
        let at = self.start_us + self.plan.knobs.storm_back_ms * 1000;
        let g = self.conns[slot].generation;
        self.timer(at, slot, g, Tk::StormBack);
    }

    /// The end of the storm: the target is the room's highest acked seq now.
    pub(crate) fn storm_back(&mut self, slot: usize) {
        let now = now_us();
        let room = self.conns[slot].spec.room as usize;
        let s = &mut self.stats.storm;
        s.back_us = if s.back_us == 0 {
            now
        } else {
            s.back_us.min(now)
        };
        let c = &mut self.conns[slot];
        if c.state != State::Down {
            return;
        }
        c.storm_t0 = now;
        if self.storm_rooms[room] {
            let target = self.room_max[room].max(c.storm_last);
            let missed = target - c.storm_last;
            c.storm_target = target;
            c.storm_pending = true;
            s.missed_min = if s.rejoined == 0 {
                missed
            } else {
                s.missed_min.min(missed)
            };
            s.rejoined += 1;
            s.missed_sum += missed;
            s.missed_max = s.missed_max.max(missed);
        } else {
            s.no_target += 1;
        }
        self.reconnect(slot);
    }

    /// After messages or a join: whether a rejoined storm socket reached its target.
    pub(crate) fn storm_check(&mut self, slot: usize, now: u64) {
        let c = &mut self.conns[slot];
        if !c.storm_pending || c.track.last < c.storm_target {
            return;
        }
        c.storm_pending = false;
        let s = &mut self.stats.storm;
        s.catchup.record(now.saturating_sub(c.storm_t0));
        s.caught_up += 1;
        s.last_caught_us = s.last_caught_us.max(now);
    }
}

/// Samples the server, PostgreSQL and the harness every 200 ms on a thread of its own.
pub struct Watch {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Vec<Sample>>,
}

impl Watch {
    /// Starts sampling (`server`: the `--server-pid`).
    pub fn start(server: Option<u32>) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut sampler = Sampler::new(server);
            let mut out = vec![sampler.sample()];
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                out.push(sampler.sample());
            }
            out
        });
        Watch { stop, handle }
    }

    /// Stops and returns the samples.
    pub fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

/// CPU (% of one core) of the server, PostgreSQL and the harness from the last
/// sample at or before `from` to the first at or after `to`.
fn cpu_between(samples: &[Sample], from: u64, to: u64) -> Option<(f64, f64, f64, f64)> {
    let a = samples.iter().rev().find(|s| s.t_us <= from)?;
    let b = samples.iter().find(|s| s.t_us >= to.max(from + 1))?;
    Some((
        cpu_pct(a, b, |s| s.server_ticks),
        cpu_pct(a, b, |s| s.pg_ticks),
        cpu_pct(a, b, |s| s.harness_ticks),
        b.t_us.saturating_sub(a.t_us) as f64 / 1e6,
    ))
}

/// What the report adds for a storm.
pub struct Inputs<'a> {
    /// The merged storm figures.
    pub storm: &'a StormStats,
    /// The run's counters (history frames).
    pub c: &'a Counters,
    /// The 200 ms samples.
    pub samples: &'a [Sample],
    /// When the run started (unix µs).
    pub go_us: u64,
    /// When the storm dropped the sockets, ms after the start.
    pub drop_ms: u64,
    /// The target for the last socket to catch up, in ms.
    pub target_ms: u64,
    /// Whether the server was sampled.
    pub server: bool,
}

/// The storm's lines for the summary and its part of the JSON.
pub fn report(i: &Inputs) -> (String, Value) {
    let s = i.storm;
    let ms = |us: u64| us as f64 / 1000.0;
    let all = s.caught_up == s.rejoined && s.rejoined > 0 && s.no_target == 0;
    let span_us = s.last_caught_us.saturating_sub(s.back_us);
    let met = all && span_us <= i.target_ms * 1000;
    let drop_us = i.go_us + i.drop_ms * 1000;
    // Steady state: the last two thirds of the stream before the drop.
    let steady = cpu_between(i.samples, i.go_us + i.drop_ms * 1000 / 3, drop_us);
    let during = (s.last_caught_us > 0)
        .then(|| cpu_between(i.samples, s.back_us, s.last_caught_us))
        .flatten();
    let mean_missed = s.missed_sum as f64 / s.rejoined.max(1) as f64;
    let h = &s.catchup;
    let mut t = String::new();
    t += &format!(
        "storm      {} dropped, {} rejoined, {} caught up{}; missed {:.1} per socket (min {}, max {})\n",
        s.dropped,
        s.rejoined,
        s.caught_up,
        if s.no_target > 0 {
            format!(
                ", {} without a known target (their room's sender is in another driver: use --threads/--procs dividing --rooms)",
                s.no_target
            )
        } else {
            String::new()
        },
        mean_missed,
        s.missed_min,
        s.missed_max
    );
    t += &format!(
        "catch-up   all caught up {:.3} s after the rejoin ({} target {:.1} s); per socket p50 {:.1} ms p90 {:.1} ms p99 {:.1} ms max {:.1} ms\n",
        span_us as f64 / 1e6,
        if met { "within the" } else { "NOT within the" },
        i.target_ms as f64 / 1000.0,
        ms(h.pct(50.0)),
        ms(h.pct(90.0)),
        ms(h.pct(99.0)),
        ms(h.pct(100.0))
    );
    let cpu = |x: Option<(f64, f64, f64, f64)>| match x {
        Some((srv, pg, hn, secs)) if i.server => {
            format!("server {srv:.0}%, postgres {pg:.0}%, harness {hn:.0}% over {secs:.1} s")
        }
        Some((_, pg, hn, secs)) => {
            format!("server -, postgres {pg:.0}%, harness {hn:.0}% over {secs:.1} s")
        }
        None => "-".into(),
    };
    t += &format!(
        "storm cpu  during catch-up: {}; steady stream before: {} (100% = one core)\n",
        cpu(during),
        cpu(steady)
    );
    t += &format!(
        "history    {} history frames ({} with has_more), {} messages via history\n",
        i.c.histories, i.c.histories_more, i.c.via_history
    );
    let cpu_json = |x: Option<(f64, f64, f64, f64)>| {
        x.map(|(srv, pg, hn, secs)| {
            json!({
                "server_cpu_pct": i.server.then_some(srv),
                "postgres_cpu_pct": pg,
                "harness_cpu_pct": hn,
                "secs": secs,
            })
        })
    };
    let j = json!({
        "dropped": s.dropped,
        "rejoined": s.rejoined,
        "caught_up": s.caught_up,
        "no_target": s.no_target,
        "missed_mean": mean_missed,
        "missed_min": s.missed_min,
        "missed_max": s.missed_max,
        "all_caught_up_secs": span_us as f64 / 1e6,
        "target_secs": i.target_ms as f64 / 1000.0,
        "target_met": met,
        "catchup_us": {
            "p50": h.pct(50.0), "p90": h.pct(90.0), "p99": h.pct(99.0), "max": h.pct(100.0),
            "count": h.count(),
        },
        "cpu_catchup": cpu_json(during),
        "cpu_steady": cpu_json(steady),
        "history_frames": i.c.histories,
        "history_frames_more": i.c.histories_more,
        "via_history": i.c.via_history,
    });
    (t, j)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_and_reports() {
        let mut a = StormStats {
            rejoined: 2,
            caught_up: 2,
            dropped: 2,
            missed_sum: 200,
            missed_min: 99,
            missed_max: 101,
            back_us: 1_000_000,
            last_caught_us: 3_000_000,
            ..StormStats::default()
        };
        a.catchup.record(1_500_000);
        let b = StormStats {
            rejoined: 1,
            caught_up: 0,
            dropped: 1,
            missed_sum: 100,
            missed_min: 100,
            missed_max: 100,
            back_us: 900_000,
            ..StormStats::default()
        };
        a.merge(&b);
        assert_eq!(
            (a.rejoined, a.caught_up, a.missed_min, a.missed_max),
            (3, 2, 99, 101)
        );
        assert_eq!((a.back_us, a.last_caught_us), (900_000, 3_000_000));
        let c = Counters::default();
        fn inputs<'a>(storm: &'a StormStats, c: &'a Counters) -> Inputs<'a> {
            Inputs {
                storm,
                c,
                samples: &[],
                go_us: 0,
                drop_ms: 0,
                target_ms: 5000,
                server: false,
            }
        }
        // One socket never caught up: the target is not met, however fast the rest.
        let (text, j) = report(&inputs(&a, &c));
        assert!(text.contains("NOT within"), "{text}");
        assert_eq!(j["target_met"], false);
        a.caught_up = 3;
        let (_, j) = report(&inputs(&a, &c));
        assert_eq!(j["target_met"], true);
        // Two seconds from the first rejoin to the last catch-up: over a 1 s target.
        let (_, j) = report(&Inputs {
            target_ms: 1000,
            ..inputs(&a, &c)
        });
        assert_eq!(j["target_met"], false);
    }
}
