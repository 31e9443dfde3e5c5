//! The end of a run: the summary table on stdout and `--json FILE` with every figure
//! (the plot is in `plot.rs`).

use crate::proc::{Sample, cpu_pct};
use crate::stats::{Hist, Stats};
use serde_json::{Value, json};

/// Everything known at the end of a run.
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// The scenario's shape in words.
    pub summary: String,
    /// The command line.
    pub command: String,
    /// Sockets set up before the run (churn slots not included).
    pub sockets: usize,
    /// Churn slots.
    pub churn_slots: usize,
    /// Users registered.
    pub users: usize,
    /// Rooms created.
    pub rooms: usize,
    /// Memberships the plan needed.
    pub memberships: usize,
    /// Seconds provisioning took.
    pub provision_secs: f64,
    /// Child processes (1 = in-process).
    pub procs: usize,
    /// Driver threads per process.
    pub threads: usize,
    /// Merged figures.
    pub stats: Stats,
    /// When sending started (unix µs).
    pub go_us: u64,
    /// Samples: before setup, after setup, after the run (before closing), at the end.
    pub marks: [Sample; 4],
    /// One sample per second.
    pub samples: Vec<Sample>,
    /// Server pid, if watched.
    pub server_pid: Option<u32>,
    /// Typing events that should have arrived (every other socket in the room).
    pub typing_expected: u64,
}

/// Why a run did not pass, if it did not.
pub fn verdict(r: &Report) -> (i32, Vec<String>) {
    let c = &r.stats.c;
    let mut why = Vec::new();
    if c.violations() > 0 {
        why.push(format!(
            "correctness: lost {} duplicated {} out_of_order {} gaps {}",
            c.lost, c.duplicated, c.out_of_order, c.gaps
        ));
        return (1, why);
    }
    if c.connect_failed + c.upgrade_failed + c.join_failed > 0 {
        why.push(format!(
            "setup failures: connect {} upgrade {} join {}",
            c.connect_failed, c.upgrade_failed, c.join_failed
        ));
    }
    if c.unacked > 0 {
        why.push(format!("{} messages never acknowledged", c.unacked));
    }
    if c.error_frames > 0 {
        why.push(format!(
            "{} error frames: {:?}",
            c.error_frames, r.stats.error_codes
        ));
    }
    if c.cycles_failed > 0 {
        why.push(format!("{} churn cycles failed", c.cycles_failed));
    }
    if c.acked > 0 && c.tracked > 0 && c.delivered == 0 {
        why.push("messages were acked but nothing was delivered".into());
    }
    if r.server_pid.is_some() && r.marks[3].server_rss_kb == 0 {
        why.push("the server process is gone".into());
    }
    (if why.is_empty() { 0 } else { 2 }, why)
}

fn secs(a: u64, b: u64) -> f64 {
    (b.saturating_sub(a) as f64 / 1e6).max(1e-3)
}

pub(crate) fn ms(us: u64) -> String {
    if us >= 10_000_000 {
        format!("{:.1} s", us as f64 / 1e6)
    } else {
        format!("{:.2} ms", us as f64 / 1e3)
    }
}

fn hist_json(h: &Hist) -> Value {
    json!({
        "count": h.count(),
        "p50_us": h.pct(50.0), "p90_us": h.pct(90.0), "p99_us": h.pct(99.0),
        "p999_us": h.pct(99.9), "max_us": h.0.max(),
        "mean_us": if h.count() > 0 { h.0.mean() } else { 0.0 },
    })
}

/// The histograms worth showing, with their names.
pub(crate) fn hists(s: &Stats) -> Vec<(&'static str, &Hist)> {
    [
        ("latency", &s.latency),
        ("ack", &s.ack),
        ("connect", &s.connect),
        ("join", &s.join),
        ("reconnect", &s.reconnect),
        ("churn_cycle", &s.cycle),
        ("typing", &s.typing),
    ]
    .into_iter()
    .filter(|(_, h)| h.count() > 0)
    .collect()
}

/// Figures derived from the raw ones.
struct Derived {
    setup_s: f64,
    setup_rate: f64,
    send_rate: f64,
    ack_rate: f64,
    deliver_rate: f64,
    server_cpu: f64,
    server_cpu_peak: f64,
    pg_cpu: f64,
    harness_cpu: f64,
    rss_per_conn: f64,
    server_rss_peak_kb: u64,
    harness_rss_peak_kb: u64,
}

fn derive(r: &Report) -> Derived {
    let s = &r.stats;
    let [base, ready, sent, _] = &r.marks;
    let setup_s = secs(s.setup_start_us, s.setup_end_us);
    let window: Vec<&Sample> = r
        .samples
        .iter()
        .filter(|x| x.t_us >= ready.t_us && x.t_us <= sent.t_us)
        .collect();
    let server_cpu_peak = window
        .windows(2)
        .map(|w| cpu_pct(w[0], w[1], |x| x.server_ticks))
        .fold(0.0, f64::max);
    Derived {
        setup_s,
        setup_rate: s.c.joined.max(s.c.connected) as f64 / setup_s,
        send_rate: s.c.sent as f64 / secs(r.go_us, s.last_send_us),
        ack_rate: s.c.acked as f64 / secs(r.go_us, s.last_ack_us),
        deliver_rate: s.c.delivered as f64 / secs(r.go_us, s.last_deliver_us),
        server_cpu: cpu_pct(ready, sent, |x| x.server_ticks),
        server_cpu_peak,
        pg_cpu: cpu_pct(ready, sent, |x| x.pg_ticks),
        harness_cpu: cpu_pct(ready, sent, |x| x.harness_ticks),
        rss_per_conn: if s.c.connected > 0 && sent.server_rss_kb > 0 {
            (sent.server_rss_kb as f64 - base.server_rss_kb as f64) * 1024.0 / s.c.connected as f64
        } else {
            0.0
        },
        server_rss_peak_kb: r
            .samples
            .iter()
            .chain(&r.marks)
            .map(|x| x.server_rss_kb)
            .max()
            .unwrap_or(0),
        harness_rss_peak_kb: r
            .samples
            .iter()
            .chain(&r.marks)
            .map(|x| x.harness_rss_kb)
            .max()
            .unwrap_or(0),
    }
}

fn mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}

/// The summary table, as printed at the end of a run.
pub fn table(r: &Report) -> String {
    let s = &r.stats;
    let c = &s.c;
    let d = derive(r);
    let mut o = String::new();
    let mut line = |l: String| {
        o.push_str(&l);
        o.push('\n');
    };
    line(format!("== {}: {} ==", r.scenario, r.summary));
    line(format!(
        "provision    {} users, {} rooms, {} memberships in {:.1} s",
        r.users, r.rooms, r.memberships, r.provision_secs
    ));
    line(format!(
        "setup        {} of {} sockets upgraded, {} joined ({} connect / {} upgrade / {} join failures) in {:.2} s = {:.0}/s  [{} proc x {} thread]",
        c.connected,
        r.sockets,
        c.joined,
        c.connect_failed,
        c.upgrade_failed,
        c.join_failed,
        d.setup_s,
        d.setup_rate,
        r.procs,
        r.threads
    ));
    line(format!(
        "{:<12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "", "p50", "p90", "p99", "p99.9", "max", "count"
    ));
    for (name, h) in hists(s) {
        line(format!(
            "{:<12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            name,
            ms(h.pct(50.0)),
            ms(h.pct(90.0)),
            ms(h.pct(99.0)),
            ms(h.pct(99.9)),
            ms(h.0.max()),
            h.count()
        ));
    }
    if c.sent > 0 || c.delivered > 0 {
        line(format!(
            "messages     sent {} ({:.0}/s), acked {} ({:.0}/s), rejected {}, unacked {}; send lag max {}",
            c.sent,
            d.send_rate,
            c.acked,
            d.ack_rate,
            c.send_rejected,
            c.unacked,
            ms(c.send_lag_max_us)
        ));
        line(format!(
            "deliveries   {} ({:.0}/s) to {} receivers, {} in {} history frames ({} with has_more); {} frames, {} in / {} out",
            c.delivered,
            d.deliver_rate,
            c.tracked,
            c.via_history,
            c.histories,
            c.histories_more,
            c.frames_in,
            mb(c.bytes_in / 1024),
            mb(c.bytes_out / 1024)
        ));
    }
    if c.cycles + c.cycles_failed + c.cycles_skipped > 0 {
        line(format!(
            "churn        {} cycles ({:.1}/s), {} failed, {} skipped (all slots busy)",
            c.cycles,
            c.cycles as f64 / secs(r.go_us, r.marks[2].t_us),
            c.cycles_failed,
            c.cycles_skipped
        ));
    }
    if c.typing_sent > 0 {
        line(format!(
            "typing       sent {}, received {} of {} expected ({} missing, best-effort)",
            c.typing_sent,
            c.typing_recv,
            r.typing_expected,
            r.typing_expected.saturating_sub(c.typing_recv)
        ));
    }
    line(format!(
        "events       {} error frames {:?}; {} server closes {:?}; {} reconnects; {} presence",
        c.error_frames,
        s.error_codes,
        c.server_closed,
        s.close_codes,
        c.reconnects,
        c.presence_recv
    ));
    if r.server_pid.is_some() {
        line(format!(
            "server       cpu {:.0}% avg, {:.0}% peak during the run; rss {} before, {} after setup, {} after the run, {} peak",
            d.server_cpu,
            d.server_cpu_peak,
            mb(r.marks[0].server_rss_kb),
            mb(r.marks[1].server_rss_kb),
            mb(r.marks[2].server_rss_kb),
            mb(d.server_rss_peak_kb)
        ));
        if r.scenario == "connections" && c.connected > 0 {
            line(format!(
                "             rss growth per connection {:.1} KiB ({} sockets; true only on a freshly started server)",
                d.rss_per_conn / 1024.0,
                c.connected
            ));
        }
    }
    line(format!(
        "postgres     cpu {:.0}% avg during the run (every `postgres` process on the machine)",
        d.pg_cpu
    ));
    line(format!(
        "harness      cpu {:.0}% avg during the run, rss peak {}",
        d.harness_cpu,
        mb(d.harness_rss_peak_kb)
    ));
    let (code, why) = verdict(r);
    line(format!(
        "correctness  lost {}  duplicated {}  out of order {}  gaps {}  ({} receiver streams checked)  {}",
        c.lost,
        c.duplicated,
        c.out_of_order,
        c.gaps,
        c.tracked,
        if c.violations() == 0 { "OK" } else { "FAILED" }
    ));
    for smp in &s.samples {
        line(format!("  e.g. {smp}"));
    }
    line(format!(
        "verdict      {}",
        if code == 0 {
            "PASS".to_string()
        } else {
            format!("FAIL ({})", why.join("; "))
        }
    ));
    o
}

/// Every figure as JSON (`--json FILE`).
pub fn to_json(r: &Report) -> Value {
    let d = derive(r);
    let (code, why) = verdict(r);
    let h: serde_json::Map<String, Value> = hists(&r.stats)
        .into_iter()
        .map(|(n, h)| (n.to_string(), hist_json(h)))
        .collect();
    json!({
        "scenario": r.scenario,
        "summary": r.summary,
        "command": r.command,
        "sockets": r.sockets, "churn_slots": r.churn_slots, "users": r.users, "rooms": r.rooms,
        "memberships": r.memberships, "provision_secs": r.provision_secs,
        "procs": r.procs, "threads": r.threads,
        "counters": r.stats.c,
        "histograms": h,
        "error_codes": r.stats.error_codes,
        "close_codes": r.stats.close_codes,
        "rates": {
            "setup_secs": d.setup_s, "connect_join_per_s": d.setup_rate,
            "sent_per_s": d.send_rate, "acked_per_s": d.ack_rate, "delivered_per_s": d.deliver_rate,
        },
        "server": {
            "pid": r.server_pid,
            "cpu_pct_avg": d.server_cpu, "cpu_pct_peak": d.server_cpu_peak,
            "rss_kb_before": r.marks[0].server_rss_kb, "rss_kb_after_setup": r.marks[1].server_rss_kb,
            "rss_kb_after_run": r.marks[2].server_rss_kb, "rss_kb_peak": d.server_rss_peak_kb,
            "rss_bytes_per_connection": d.rss_per_conn,
        },
        "postgres": { "cpu_pct_avg": d.pg_cpu },
        "harness": { "cpu_pct_avg": d.harness_cpu, "rss_kb_peak": d.harness_rss_peak_kb },
        "typing_expected": r.typing_expected,
        "violation_samples": r.stats.samples,
        "samples": r.samples,
        "exit_code": code,
        "failures": why,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn report() -> Report {
        let mut stats = Stats::default();
        for v in 1..=1000 {
            stats.latency.record(v * 10);
        }
        stats.c.sent = 10;
        stats.c.acked = 10;
        stats.c.delivered = 1000;
        stats.c.tracked = 100;
        Report {
            scenario: "delivery".into(),
            summary: "a <test>".into(),
            command: "chat-bench delivery".into(),
            sockets: 110,
            churn_slots: 0,
            users: 110,
            rooms: 1,
            memberships: 110,
            provision_secs: 1.0,
            procs: 1,
            threads: 1,
            stats,
            go_us: 1,
            marks: [Sample::default(); 4],
            samples: Vec::new(),
            server_pid: None,
            typing_expected: 0,
        }
    }

    #[test]
    fn clean_run_passes_and_violations_fail() {
        let mut r = report();
        assert_eq!(verdict(&r).0, 0);
        assert!(table(&r).contains("PASS"));
        r.stats.c.duplicated = 1;
        assert_eq!(verdict(&r).0, 1);
        r.stats.c.duplicated = 0;
        r.stats.c.unacked = 2;
        assert_eq!(verdict(&r).0, 2);
    }

    #[test]
    fn plot_is_svg() {
        let s = crate::plot::svg(&report());
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert!(s.contains("polyline") && s.contains("a &lt;test&gt;"));
        assert_eq!(to_json(&report())["histograms"]["latency"]["count"], 1000);
    }
}
