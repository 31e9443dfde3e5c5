//! The end of a run: the summary table on stdout and `--json FILE` with every figure
//! (the plot is in `plot.rs`).

use crate::checks::{DbCheck, growth_pct, rss_per_conn};
use crate::proc::{Sample, cpu_pct};
use crate::stats::{Hist, Stats};
use serde_json::{Value, json};

/// The soak settings the report needs.
#[derive(Clone, Copy, Debug)]
pub struct SoakCfg {
    /// Interval length, ms.
    pub interval_ms: u64,
    /// Growth is measured from the first interval starting at or after this, ms.
    pub warmup_ms: u64,
    /// Run length, ms.
    pub duration_ms: u64,
    /// Largest growth allowed, % (0 = not checked).
    pub max_growth_pct: f64,
}

/// How the RSS baseline of `connections` was taken.
#[derive(Clone, Copy, Debug)]
pub struct RssBaseline {
    /// The RSS stopped moving before the baseline was taken.
    pub settled: bool,
    /// How long we waited for it.
    pub waited_secs: f64,
    /// Server RSS before provisioning (KiB).
    pub before_provision_kb: u64,
    /// Age of the server process when the run began.
    pub server_age_secs: Option<f64>,
}

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
    /// `--allow-server-closes`.
    pub allow_server_closes: bool,
    /// `--database-url`: the database check, or why it could not be done.
    pub db: Option<Result<DbCheck, String>>,
    /// `connections`: how the RSS baseline was taken (None: the sample just before
    /// the sockets were opened).
    pub rss_baseline: Option<RssBaseline>,
    /// Soak settings (per-interval figures and growth checks).
    pub soak: Option<SoakCfg>,
}

/// One interval of a soak.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct IntervalRow {
    /// Seconds from the start to the end of the interval.
    pub t_end_s: f64,
    /// Messages sent in it.
    pub sent: u64,
    /// Messages delivered in it.
    pub delivered: u64,
    /// Latency of its deliveries.
    pub p50_us: u64,
    /// See `p50_us`.
    pub p99_us: u64,
    /// See `p50_us`.
    pub max_us: u64,
    /// Mean server RSS of its samples (KiB; 0 = not sampled).
    pub server_rss_kb: u64,
    /// Mean server descriptors of its samples.
    pub server_fds: u64,
    /// Samples it holds.
    pub samples: usize,
}

/// The per-interval series of a soak, and the growth after warm-up.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Series {
    /// Interval length, s.
    pub interval_secs: f64,
    /// The intervals of the run.
    pub rows: Vec<IntervalRow>,
    /// Index of the interval growth is measured from (first after warm-up).
    pub base: Option<usize>,
    /// Index of the interval growth is measured to (the last).
    pub end: Option<usize>,
    /// Server RSS growth from `base` to `end`, %.
    pub rss_growth_pct: Option<f64>,
    /// Server descriptor growth from `base` to `end`, %.
    pub fd_growth_pct: Option<f64>,
    /// Largest growth allowed, %.
    pub max_growth_pct: f64,
}

/// The interval series of a soak (None for other scenarios).
pub fn series(r: &Report) -> Option<Series> {
    let cfg = r.soak?;
    let every = cfg.interval_ms.max(1) * 1000;
    let n = (cfg.duration_ms * 1000).div_ceil(every) as usize;
    let mut rows = Vec::with_capacity(n);
    for i in 0..n {
        let t0 = r.go_us + i as u64 * every;
        let t1 = t0 + every;
        let inside: Vec<&Sample> = r
            .samples
            .iter()
            .filter(|s| s.t_us >= t0 && s.t_us < t1 && s.server_rss_kb > 0)
            .collect();
        let k = inside.len() as u64;
        let mean = |f: fn(&Sample) -> u64| inside.iter().map(|s| f(s)).sum::<u64>() / k.max(1);
        let st = r.stats.intervals.get(i);
        rows.push(IntervalRow {
            t_end_s: (i + 1) as f64 * every as f64 / 1e6,
            sent: st.map_or(0, |s| s.sent),
            delivered: st.map_or(0, |s| s.delivered),
            p50_us: st.map_or(0, |s| s.latency.pct(50.0)),
            p99_us: st.map_or(0, |s| s.latency.pct(99.0)),
            max_us: st.map_or(0, |s| s.latency.0.max()),
            server_rss_kb: mean(|s| s.server_rss_kb),
            server_fds: mean(|s| s.server_fds),
            samples: inside.len(),
        });
    }
    let sampled = |i: &usize| rows[*i].samples > 0;
    let base = (0..n)
        .filter(|&i| i as u64 * every >= cfg.warmup_ms * 1000)
        .find(sampled);
    let end = (0..n)
        .rev()
        .find(sampled)
        .filter(|&e| base.is_some_and(|b| b < e));
    let growth = |f: fn(&IntervalRow) -> u64| match (base, end) {
        (Some(b), Some(e)) => Some(growth_pct(f(&rows[b]) as f64, f(&rows[e]) as f64)),
        _ => None,
    };
    Some(Series {
        interval_secs: every as f64 / 1e6,
        rss_growth_pct: growth(|x| x.server_rss_kb),
        fd_growth_pct: growth(|x| x.server_fds),
        base,
        end,
        rows,
        max_growth_pct: cfg.max_growth_pct,
    })
}

/// Message-carrying frames per delivered message (None before any delivery).
pub fn frames_per_message(s: &Stats) -> Option<f64> {
    (s.c.delivered > 0).then(|| s.c.message_frames as f64 / s.c.delivered as f64)
}

/// Why a run did not pass, if it did not: exit 1 when the server misbehaved (any
/// check below other than the completeness ones), 2 when the run was incomplete, 0
/// when neither. Every reason names its counter.
pub fn verdict(r: &Report) -> (i32, Vec<String>) {
    let c = &r.stats.c;
    let mut bad = Vec::new();
    let mut incomplete = Vec::new();
    if c.violations() > 0 {
        bad.push(format!(
            "stream: lost {} duplicated {} out_of_order {} gaps {}",
            c.lost, c.duplicated, c.out_of_order, c.gaps
        ));
    }
    if c.server_closed > 0 && !r.allow_server_closes {
        bad.push(format!(
            "server_closed {}: the server closed sockets unasked (close code: count, 0 = no close frame) {:?}; pass --allow-server-closes if the scenario expects it",
            c.server_closed, r.stats.close_codes
        ));
    }
    if c.wrong_room > 0 {
        bad.push(format!(
            "wrong_room {}: messages of a room the socket did not join",
            c.wrong_room
        ));
    }
    if c.reconnect_failed > 0 && !r.allow_server_closes {
        bad.push(format!(
            "reconnect_failed {}: reconnects refused or failed while the server was up; pass --allow-server-closes if the scenario takes servers down",
            c.reconnect_failed
        ));
    }
    if c.bad_frames > 0 {
        bad.push(format!(
            "bad_frames {}: frames that could not be parsed",
            c.bad_frames
        ));
    }
    if c.ack_dup_seqs > 0 {
        bad.push(format!(
            "ack_dup_seqs {}: seqs acked for two sends",
            c.ack_dup_seqs
        ));
    }
    if c.ack_seq_holes > 0 {
        bad.push(format!(
            "ack_seq_holes {}: seqs below a room's highest acked seq that no ack carried",
            c.ack_seq_holes
        ));
    }
    if c.typing_violations() > 0 {
        bad.push(format!(
            "typing: typing_missed_starts {} typing_missed_stops {} typing_repeated {} typing_foreign {}",
            c.typing_missed_starts, c.typing_missed_stops, c.typing_repeated, c.typing_foreign
        ));
    }
    match &r.db {
        Some(Ok(d)) if d.failures() > 0 => bad.push(format!(
            "database: db_missing {} db_extra {} db_wrong_content {} db_wrong_ack_pairs {} db_seq_gaps {}",
            d.missing, d.extra, d.wrong_content, d.wrong_ack_pairs, d.seq_gaps
        )),
        Some(Err(e)) => incomplete.push(format!("database check not done: {e}")),
        _ => {}
    }
    if let Some(s) = series(r).filter(|s| s.max_growth_pct > 0.0) {
        let limit = s.max_growth_pct;
        if let Some(g) = s.rss_growth_pct.filter(|&g| g > limit) {
            bad.push(format!(
                "rss_growth {g:.1}%: server RSS grew more than {limit}% after warm-up"
            ));
        }
        if let Some(g) = s.fd_growth_pct.filter(|&g| g > limit) {
            bad.push(format!(
                "fd_growth {g:.1}%: server descriptors grew more than {limit}% after warm-up"
            ));
        }
    }
    if c.connect_failed + c.upgrade_failed + c.join_failed > 0 {
        incomplete.push(format!(
            "setup failures: connect {} upgrade {} join {}",
            c.connect_failed, c.upgrade_failed, c.join_failed
        ));
    }
    if c.unacked > 0 {
        incomplete.push(format!(
            "unacked {}: messages never acknowledged",
            c.unacked
        ));
    }
    if c.error_frames > 0 {
        incomplete.push(format!(
            "error_frames {}: {:?}",
            c.error_frames, r.stats.error_codes
        ));
    }
    if c.cycles_failed > 0 {
        incomplete.push(format!(
            "cycles_failed {}: churn cycles failed",
            c.cycles_failed
        ));
    }
    if c.acked > 0 && c.tracked > 0 && c.delivered == 0 {
        incomplete.push("messages were acked but nothing was delivered".into());
    }
    if r.server_pid.is_some() && r.marks[3].server_rss_kb == 0 {
        incomplete.push("the server process is gone".into());
    }
    let code = if !bad.is_empty() {
        1
    } else if !incomplete.is_empty() {
        2
    } else {
        0
    };
    bad.extend(incomplete);
    (code, bad)
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
        rss_per_conn: rss_per_conn(base.server_rss_kb, sent.server_rss_kb, s.c.connected),
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
        line(format!(
            "frames       {} message frames for {} deliveries = {} frames per delivered message ({} data frames to receivers in all)",
            c.message_frames,
            c.delivered,
            frames_per_message(s).map_or("-".into(), |f| format!("{f:.3}")),
            c.receiver_data_frames
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
            "typing       sent {}, received {} ({} if every socket of the room watched); {} watcher x user pairs checked: missed starts {} stops {}, repeated {}, foreign {}",
            c.typing_sent,
            c.typing_recv,
            r.typing_expected,
            c.typing_checked,
            c.typing_missed_starts,
            c.typing_missed_stops,
            c.typing_repeated,
            c.typing_foreign
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
                "             rss growth per connection {:.1} KiB ({} sockets): {}",
                d.rss_per_conn / 1024.0,
                c.connected,
                baseline_words(r)
            ));
        }
    }
    if let Some(sr) = series(r) {
        line(format!(
            "intervals    {:>8} {:>8} {:>10} {:>10} {:>10} {:>10} {:>9} {:>7}",
            "end", "sent", "delivered", "p50", "p99", "max", "rss", "fds"
        ));
        for (i, row) in sr.rows.iter().enumerate() {
            let mark = match (sr.base, sr.end) {
                (Some(b), _) if b == i => " <- growth from",
                (_, Some(e)) if e == i => " <- growth to",
                _ => "",
            };
            line(format!(
                "             {:>7.0}s {:>8} {:>10} {:>10} {:>10} {:>10} {:>9} {:>7}{mark}",
                row.t_end_s,
                row.sent,
                row.delivered,
                ms(row.p50_us),
                ms(row.p99_us),
                ms(row.max_us),
                if row.samples > 0 {
                    mb(row.server_rss_kb)
                } else {
                    "-".into()
                },
                if row.samples > 0 {
                    row.server_fds.to_string()
                } else {
                    "-".into()
                },
            ));
        }
        let pct = |g: Option<f64>| g.map_or("not measured".into(), |g| format!("{g:+.1}%"));
        line(format!(
            "growth       after warm-up: server rss {}, descriptors {} (limit {}%){}",
            pct(sr.rss_growth_pct),
            pct(sr.fd_growth_pct),
            sr.max_growth_pct,
            if r.server_pid.is_none() {
                "; no --server-pid: not checked"
            } else if sr.end.is_none() {
                "; too few sampled intervals after warm-up: not checked"
            } else {
                ""
            }
        ));
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
    let ok = |bad: bool| if bad { "FAILED" } else { "OK" };
    line(format!(
        "correctness  lost {}  duplicated {}  out of order {}  gaps {}  ({} receiver streams checked)  {}",
        c.lost,
        c.duplicated,
        c.out_of_order,
        c.gaps,
        c.tracked,
        ok(c.violations() > 0)
    ));
    line(format!(
        "             server_closed {}{}  wrong_room {}  bad_frames {}  {}",
        c.server_closed,
        if r.allow_server_closes {
            " (allowed)"
        } else {
            ""
        },
        c.wrong_room,
        c.bad_frames,
        ok((c.server_closed > 0 && !r.allow_server_closes) || c.wrong_room + c.bad_frames > 0)
    ));
    line(format!(
        "             acks: {} rooms, ack_dup_seqs {}  ack_seq_holes {}  {}",
        r.rooms,
        c.ack_dup_seqs,
        c.ack_seq_holes,
        ok(c.ack_dup_seqs + c.ack_seq_holes > 0)
    ));
    match &r.db {
        Some(Ok(db)) => {
            line(format!(
                "             database: {} rooms, {} rows; db_missing {}  db_extra {}  db_wrong_content {}  db_wrong_ack_pairs {}  db_seq_gaps {}  {}",
                db.rooms,
                db.rows,
                db.missing,
                db.extra,
                db.wrong_content,
                db.wrong_ack_pairs,
                db.seq_gaps,
                ok(db.failures() > 0)
            ));
            for smp in &db.samples {
                line(format!("  e.g. {smp}"));
            }
        }
        Some(Err(e)) => line(format!("             database: not checked: {e}")),
        None => line("             database: not checked (no --database-url)".into()),
    }
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

/// What the RSS baseline of a run was, in words.
fn baseline_words(r: &Report) -> String {
    match r.rss_baseline {
        Some(b) => format!(
            "baseline after provisioning, {} after {:.1} s; server {} ({} before provisioning)",
            if b.settled {
                "settled"
            } else {
                "NOT settled (figure unreliable)"
            },
            b.waited_secs,
            b.server_age_secs
                .map_or("age unknown".into(), |a| format!("started {a:.0} s before")),
            mb(b.before_provision_kb)
        ),
        None => "baseline just before the sockets opened (not settled)".into(),
    }
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
            "rss_baseline": r.rss_baseline.map_or_else(
                || json!({ "kind": "before_sockets", "rss_kb": r.marks[0].server_rss_kb }),
                |b| json!({
                    "kind": if b.settled { "after_provisioning_settled" } else { "after_provisioning_not_settled" },
                    "rss_kb": r.marks[0].server_rss_kb,
                    "waited_secs": b.waited_secs,
                    "rss_kb_before_provisioning": b.before_provision_kb,
                    "server_age_secs": b.server_age_secs,
                }),
            ),
            "fds_before": r.marks[0].server_fds, "fds_after_run": r.marks[2].server_fds,
        },
        "frames_per_message": frames_per_message(&r.stats),
        "checks": {
            "server_closed": r.stats.c.server_closed,
            "server_closes_allowed": r.allow_server_closes,
            "wrong_room": r.stats.c.wrong_room,
            "bad_frames": r.stats.c.bad_frames,
            "ack_dup_seqs": r.stats.c.ack_dup_seqs,
            "ack_seq_holes": r.stats.c.ack_seq_holes,
            "reconnect_failed": r.stats.c.reconnect_failed,
            "typing_checked": r.stats.c.typing_checked,
            "typing_missed_starts": r.stats.c.typing_missed_starts,
            "typing_missed_stops": r.stats.c.typing_missed_stops,
            "typing_repeated": r.stats.c.typing_repeated,
            "typing_foreign": r.stats.c.typing_foreign,
        },
        "database": match &r.db {
            None => Value::Null,
            Some(Ok(d)) => json!(d),
            Some(Err(e)) => json!({ "error": e }),
        },
        "soak": series(r),
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
            allow_server_closes: false,
            db: None,
            rss_baseline: None,
            soak: None,
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
        // A server fault outranks an incomplete run.
        r.stats.c.wrong_room = 1;
        assert_eq!(verdict(&r).0, 1);
    }

    /// Each new counter fails the run on its own and is named in the reasons.
    #[test]
    fn each_server_fault_fails_with_its_name() {
        type Set = fn(&mut Report);
        let cases: [(&str, Set); 12] = [
            ("server_closed", |r| r.stats.c.server_closed = 1),
            ("wrong_room", |r| r.stats.c.wrong_room = 1),
            ("bad_frames", |r| r.stats.c.bad_frames = 1),
            ("ack_dup_seqs", |r| r.stats.c.ack_dup_seqs = 1),
            ("ack_seq_holes", |r| r.stats.c.ack_seq_holes = 1),
            ("typing_missed_stops", |r| r.stats.c.typing_missed_stops = 1),
            ("typing_foreign", |r| r.stats.c.typing_foreign = 1),
            ("db_seq_gaps", |r| {
                r.db = Some(Ok(DbCheck {
                    seq_gaps: 1,
                    ..DbCheck::default()
                }))
            }),
            ("lost", |r| r.stats.c.lost = 1),
            ("reconnect_failed", |r| r.stats.c.reconnect_failed = 1),
            ("db_wrong_content", |r| {
                r.db = Some(Ok(DbCheck {
                    wrong_content: 1,
                    ..DbCheck::default()
                }))
            }),
            ("db_wrong_ack_pairs", |r| {
                r.db = Some(Ok(DbCheck {
                    wrong_ack_pairs: 1,
                    ..DbCheck::default()
                }))
            }),
        ];
        for (name, set) in cases {
            let mut r = report();
            set(&mut r);
            let (code, why) = verdict(&r);
            assert_eq!(code, 1, "{name}");
            assert!(why.iter().any(|w| w.contains(name)), "{name}: {why:?}");
            assert!(table(&r).contains("FAIL ("), "{name}");
            assert_eq!(to_json(&r)["exit_code"], 1, "{name}");
        }
        // Server closes a scenario expects pass with --allow-server-closes.
        let mut r = report();
        r.stats.c.server_closed = 3;
        r.allow_server_closes = true;
        assert_eq!(verdict(&r).0, 0);
        // A database that could not be read leaves the run incomplete.
        let mut r = report();
        r.db = Some(Err("connection refused".into()));
        assert_eq!(verdict(&r).0, 2);
    }

    #[test]
    fn frames_per_message_is_in_the_json() {
        let mut r = report();
        r.stats.c.message_frames = 250;
        let j = to_json(&r);
        assert_eq!(j["frames_per_message"], 0.25);
        for key in ["exit_code", "rates", "server"] {
            assert!(!j[key].is_null(), "{key}");
        }
        r.stats.c.delivered = 0;
        assert!(to_json(&r)["frames_per_message"].is_null());
    }

    /// The soak's growth check: shown to fail on a server whose RSS grows 20 % after
    /// warm-up, and to pass on a flat one.
    #[test]
    fn soak_growth_fails_above_the_limit() {
        let soak = |rss_end: u64, fds_end: u64| {
            let mut r = report();
            r.scenario = "soak".into();
            r.server_pid = Some(1);
            r.marks[3].server_rss_kb = 1;
            r.go_us = 1_000_000;
            r.soak = Some(SoakCfg {
                interval_ms: 1000,
                warmup_ms: 1000,
                duration_ms: 4000,
                max_growth_pct: 10.0,
            });
            for i in 0..8u64 {
                let late = i >= 6;
                r.samples.push(Sample {
                    t_us: r.go_us + i * 500_000 + 1,
                    server_rss_kb: if late { rss_end } else { 100_000 },
                    server_fds: if late { fds_end } else { 1000 },
                    ..Sample::default()
                });
            }
            r
        };
        let flat = soak(100_000, 1000);
        let svg = crate::plot::plot(&flat);
        assert!(svg.matches("<svg").count() == 3 && svg.contains("server RSS (MB)"));
        let s = series(&flat).unwrap();
        assert_eq!((s.base, s.end, s.rows.len()), (Some(1), Some(3), 4));
        assert_eq!(verdict(&flat).0, 0);
        assert!(table(&flat).contains("growth to"));
        let fat = soak(120_000, 1000);
        let (code, why) = verdict(&fat);
        assert_eq!(code, 1);
        assert!(why[0].contains("rss_growth 20.0%"), "{why:?}");
        let leaky = soak(100_000, 1200);
        assert!(verdict(&leaky).1[0].contains("fd_growth"));
        assert!(to_json(&leaky)["soak"]["fd_growth_pct"].as_f64().unwrap() > 19.0);
    }

    /// connections: the output says which baseline the RSS per connection is from.
    #[test]
    fn rss_baseline_is_named() {
        let mut r = report();
        r.scenario = "connections".into();
        r.server_pid = Some(1);
        r.stats.c.connected = 100;
        r.marks[0].server_rss_kb = 10_000;
        r.marks[2].server_rss_kb = 11_000;
        r.marks[3].server_rss_kb = 11_000;
        assert!(table(&r).contains("baseline just before the sockets opened (not settled)"));
        r.rss_baseline = Some(RssBaseline {
            settled: false,
            waited_secs: 10.0,
            before_provision_kb: 9000,
            server_age_secs: Some(3.0),
        });
        assert!(table(&r).contains("NOT settled"));
        r.rss_baseline.as_mut().unwrap().settled = true;
        let t = table(&r);
        assert!(
            t.contains("10.0 KiB") && t.contains("after provisioning, settled"),
            "{t}"
        );
        assert_eq!(
            to_json(&r)["server"]["rss_baseline"]["kind"],
            "after_provisioning_settled"
        );
    }

    #[test]
    fn plot_is_svg() {
        let s = crate::plot::svg(&report());
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert!(s.contains("polyline") && s.contains("a &lt;test&gt;"));
        assert_eq!(to_json(&report())["histograms"]["latency"]["count"], 1000);
    }
}
