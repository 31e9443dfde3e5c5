//! One benchmark run from the top: options, provisioning, the plan, the drivers
//! (threads or child processes), sampling, and the report.

use crate::args::Args;
use crate::checks;
use crate::coord::{self, PhaseId, SentValue, Upstream};
use crate::plan::{ConnSpec, Knobs, Plan, Role};
use crate::proc::{Sample, Sampler, cpu_pct};
use crate::report::{self, Report, RssBaseline, SoakCfg};
use crate::scenarios;
use crate::stats::LIVE_FIELDS;
use crate::util::{Rng, now_us};
use crossbeam_channel::unbounded;
use std::collections::BTreeSet;
use std::time::Instant;

/// Options shared by every scenario (see `chat-bench --help`).
pub const COMMON_HELP: &str = "\
Common options:
  --url HOST:PORT[,HOST:PORT..]  server(s) (default 127.0.0.1:3000; http:// or ws:// accepted);
                                 sockets are spread over them (a reconnect goes to the next
                                 one), provisioning uses the first
  --by-room            spread sockets over the servers by room (room k's sockets on
                       server k mod n), not one by one
  --by-shard N         spread sockets over the servers by their room's notification shard
                       out of N (chatd's database.notify_shards): room affinity
  --server-pid PID     sample the server's RSS and CPU from /proc
  --users N            users to register (sockets share tokens when fewer than sockets)
  --size BYTES         message content length (100)
  --procs N            child processes driving a share each (1 = in-process; default:
                       as many as the descriptor limit needs, raised to the hard limit)
  --threads N          driver threads per process (1)
  --source-addrs N     spread sockets over 127.0.0.1..N (auto above 20,000 sockets)
  --connect-concurrency N  sockets being set up at once per thread (200)
  --workers N          provisioning threads (8)
  --drain-secs S       wait for acks and catch-up after the run (10)
  --settle-ms MS       pause between setup and the run (1000; quick 200)
  --json FILE          write every figure as JSON
  --plot FILE.svg      draw the latency percentile curves (soak: and p99, RSS over time)
  --quick              small sizes, a few seconds (for CI)
  --allow-server-closes  the scenario expects the server to close sockets (restarts,
                       slow consumers): server closes are reported, not failures
  --database-url URL   after the run, check the messages table against the acks
Exit status: 0 pass; 1 the server misbehaved: a stream counter (lost, duplicated,
out_of_order, gaps), server_closed (without --allow-server-closes), wrong_room,
bad_frames, ack_dup_seqs, ack_seq_holes, a typing counter, a database counter, or
(soak) RSS/descriptor growth is not 0; 2 the run was incomplete (setup failures,
unacked messages, error frames, failed churn cycles, server gone, database
unreadable); 3 the run could not be done. bench/README.md says what each means.";

/// `host:port` out of `http://host:port/...`, `ws://host:port/ws` or `host:port`.
fn normalize(url: &str) -> String {
    let s = url.trim();
    let s = s.split_once("://").map_or(s, |(_, rest)| rest);
    s.split('/').next().unwrap_or(s).to_string()
}

/// The top of the run: answers barriers, samples /proc and prints progress.
struct Top {
    sampler: Sampler,
    samples: Vec<Sample>,
    marks: Vec<Sample>,
    started: Instant,
    last: [u64; LIVE_FIELDS],
    go_us: u64,
    settle_us: u64,
}

impl Upstream for Top {
    fn phase(&mut self, phase: PhaseId, merged: Vec<u64>) -> Vec<u64> {
        let s = self.sampler.sample();
        self.marks.push(s);
        self.samples.push(s);
        match phase {
            PhaseId::Ready => {
                eprintln!(
                    "[{:6.1}s] setup done: {} ready, {} failed; go",
                    self.started.elapsed().as_secs_f64(),
                    merged.first().copied().unwrap_or(0),
                    merged.get(1).copied().unwrap_or(0)
                );
                // Every thread and process schedules the same start, after a pause that
                // lets the server finish the presence events of the joins: they are
                // setup noise, not part of the run's latencies.
                self.go_us = now_us() + self.settle_us.max(50_000);
                vec![self.go_us]
            }
            PhaseId::Sent => {
                let acked: u64 = SentValue::decode(&merged).room_acked.iter().sum();
                eprintln!(
                    "[{:6.1}s] sending done: {acked} acked; waiting for receivers",
                    self.started.elapsed().as_secs_f64()
                );
                merged
            }
        }
    }

    fn progress(&mut self, snap: [u64; LIVE_FIELDS]) {
        let prev = self.samples.last().copied();
        let s = self.sampler.sample();
        self.samples.push(s);
        let cpu = prev.map_or(0.0, |p| cpu_pct(&p, &s, |x| x.server_ticks));
        let l = self.last;
        let server = if s.server_rss_kb > 0 {
            format!(
                " | server cpu {cpu:.0}% rss {:.0} MB fds {}",
                s.server_rss_kb as f64 / 1024.0,
                s.server_fds
            )
        } else {
            String::new()
        };
        eprintln!(
            "[{:6.1}s] open {} | sent {} (+{}) acked {} | delivered {} (+{}) | lat max {:.1} ms | errors {} reconnects {} typing {} cycles {}{server}",
            self.started.elapsed().as_secs_f64(),
            snap[0],
            snap[1],
            snap[1] - l[1].min(snap[1]),
            snap[2],
            snap[3],
            snap[3] - l[3].min(snap[3]),
            snap[8] as f64 / 1000.0,
            snap[4],
            snap[5],
            snap[6],
            snap[7],
        );
        self.last = snap;
    }
}

/// Runs the scenario named in `a`; returns the exit status.
pub fn run(a: &Args) -> Result<i32, String> {
    let shape = scenarios::build(&a.scenario, a)?;
    let servers: Vec<String> = a
        .str("url")
        .unwrap_or_else(|| "127.0.0.1:3000".into())
        .split(',')
        .map(normalize)
        .collect();
    let server_pid: Option<u32> = a.num("server-pid", 0u32)?.into();
    let server_pid = server_pid.filter(|&p| p != 0);
    let total = shape.conns.len();
    // Registration costs an argon2 hash on the server: --quick keeps it to a few.
    let default_users = if a.flag("quick") {
        shape.users.min(50).max(shape.min_users)
    } else {
        shape.users
    };
    let users = a.num("users", default_users.max(1))?;
    if users < shape.min_users || users == 0 {
        return Err(format!(
            "--users {users}: this scenario needs at least {}",
            shape.min_users.max(1)
        ));
    }
    // One process holds at most its descriptor limit (less a few for itself): more
    // sockets than that need child processes, chosen here unless --procs says.
    let limit = crate::util::raise_nofile_limit();
    let fit = limit.saturating_sub(64).max(1) as usize;
    let procs = a.num("procs", total.div_ceil(fit).max(1))?.max(1);
    let threads = a.num("threads", 1usize)?.max(1);
    let default_sources = if total > 20_000 {
        total.div_ceil(20_000)
    } else {
        0
    };
    let knobs = Knobs {
        duration_ms: shape.duration_ms,
        size: a.num("size", 100usize)?,
        connect_concurrency: a.num("connect-concurrency", 200usize)?,
        source_addrs: a.num("source-addrs", default_sources as u32)?,
        drain_ms: a.num("drain-secs", 10u64)? * 1000,
        churn_rate: shape.churn_rate,
        drop_mean_ms: shape.drop_mean_ms,
        typing_interval_ms: shape.typing_interval_ms,
        threads,
        offline_ms: shape.offline_ms,
        interval_ms: shape.interval_ms,
        by_room: a.flag("by-room"),
        by_shard: a.num("by-shard", 0u16)?,
        storm_drop_ms: shape.storm_drop_ms,
        storm_back_ms: shape.storm_back_ms,
    };
    let workers = a.num("workers", 8usize)?.max(1);
    let settle_us = a.sized("settle-ms", 1000u64, 200)? * 1000;
    let json_path = a.str("json");
    let plot_path = a.str("plot");
    let database_url = a.str("database-url");
    let allow_server_closes = a.flag("allow-server-closes");
    a.check_unused()?;

    let per_proc = total.div_ceil(procs) as u64 + 64;
    if per_proc > limit {
        return Err(format!(
            "{total} sockets over {procs} process(es) need {per_proc} descriptors each, the limit is {limit}: use --procs {}",
            (total as u64).div_ceil(limit.saturating_sub(64).max(1))
        ));
    }
    eprintln!("chat-bench {}: {}", a.scenario, shape.summary);

    let conns: Vec<ConnSpec> = shape
        .conns
        .iter()
        .enumerate()
        .map(|(i, &(role, room))| ConnSpec {
            id: i as u32,
            user: (i % users) as u32,
            room,
            role,
        })
        .collect();
    let memberships: Vec<(u32, u32)> = conns
        .iter()
        .map(|c| (c.user, c.room))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut sampler = Sampler::new(server_pid);
    if server_pid.is_some() && !sampler.server_alive() {
        return Err(format!(
            "--server-pid {}: no such process",
            server_pid.unwrap_or(0)
        ));
    }
    let before_provision = sampler.sample();
    let server_age = server_pid.and_then(crate::proc::age_secs);
    let tag = format!("{:08x}", Rng::seeded(7).next() as u32);
    eprintln!(
        "provisioning {users} users, {} rooms, {} memberships on {} (run tag {tag})",
        shape.rooms,
        memberships.len(),
        servers[0]
    );
    let p =
        crate::provision::provision(&servers[0], users, shape.rooms, &memberships, workers, &tag)?;
    eprintln!("provisioned in {:.1} s", p.secs);

    // Typing events go to every other socket joined to the room.
    let mut per_room = vec![0u64; shape.rooms];
    for c in &conns {
        if matches!(
            c.role,
            Role::Typer | Role::Receiver | Role::Reconnector | Role::Stormer
        ) {
            per_room[c.room as usize] += 1;
        }
    }
    let plan = Plan {
        scenario: a.scenario.clone(),
        servers,
        tokens: p.tokens,
        user_ids: p.user_ids,
        rooms: p.rooms,
        heads: p.heads,
        typers: Plan::typer_specs(&conns),
        conns,
        knobs,
    };
    let plan_churners = plan.churners();
    let heads = plan.heads.clone();
    let rss_baseline = if shape.settle_rss && server_pid.is_some() {
        let max = if a.flag("quick") { 3.0 } else { 10.0 };
        Some(settle_rss(&mut sampler, max, before_provision, server_age))
    } else {
        None
    };
    let mut top = Top {
        sampler,
        samples: Vec::new(),
        marks: Vec::new(),
        started: Instant::now(),
        last: [0; LIVE_FIELDS],
        go_us: 0,
        settle_us,
    };
    let baseline = top.sampler.sample();
    let storm_watch = (shape.storm_back_ms > 0).then(|| crate::storm::Watch::start(server_pid));
    let (tx, rx) = unbounded();
    let (members, mut children) = if procs > 1 {
        coord::spawn_children(&plan, procs, &tx)?
    } else {
        (coord::spawn_threads(&plan, &tx), Vec::new())
    };
    drop(tx);
    top.sampler.children = children.iter().map(|c| c.id()).collect();
    let result = coord::control(members, rx, &mut top);
    let end = top.sampler.sample();
    let storm_samples = storm_watch.map(crate::storm::Watch::stop);
    for c in &mut children {
        if result.is_err() {
            let _ = c.kill();
        }
        let _ = c.wait();
    }
    let mut stats = result?;
    // Acked seqs per room: unique, and exactly 1..n (holes excused up to the room's
    // unacked sends, which may have taken seqs).
    let acked: Vec<checks::AckCheck> = (0..shape.rooms)
        .map(|i| {
            let acks = stats.acked_ranges.get(i).map_or(&[][..], |r| &r[..]);
            // The membership entries before the run, and those the receivers saw.
            let mut system = stats.system_ranges.get(i).cloned().unwrap_or_default();
            let head = heads.get(i).copied().unwrap_or(0);
            if head > 0 {
                system.push((1, head));
            }
            checks::acks_beside(acks, &system)
        })
        .collect();
    for (i, ac) in acked.iter().enumerate() {
        let unacked = stats.unacked_by_room.get(i).copied().unwrap_or(0);
        let holes = ac.holes.saturating_sub(unacked);
        stats.c.ack_dup_seqs += ac.dups;
        stats.c.ack_seq_holes += holes;
        if ac.dups + holes > 0 {
            stats.sample(|| {
                format!(
                    "room {i}: {} distinct seqs acked up to {}, {} acked twice, {} never acked ({unacked} sends unacked)",
                    ac.unique, ac.max, ac.dups, ac.holes
                )
            });
        }
    }
    let db = database_url.map(|url| {
        eprintln!("checking the messages table of {} rooms", plan.rooms.len());
        crate::db::check(
            &url,
            &plan.rooms,
            &crate::db::Acked {
                checks: &acked,
                unacked: &stats.unacked_by_room,
                ranges: &stats.acked_ranges,
                digests: &stats.ack_digests,
                size: plan.knobs.size,
            },
        )
    });
    let mark = |i: usize| top.marks.get(i).copied().unwrap_or(end);
    let typing_expected = stats
        .typing_sent_by_room
        .iter()
        .zip(&per_room)
        .map(|(sent, n)| sent * n.saturating_sub(1))
        .sum();
    let r = Report {
        scenario: a.scenario.clone(),
        summary: shape.summary,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        sockets: total - plan_churners,
        churn_slots: plan_churners,
        users,
        rooms: shape.rooms,
        memberships: memberships.len(),
        provision_secs: p.secs,
        procs,
        threads,
        stats,
        go_us: top.go_us,
        marks: [baseline, mark(0), mark(1), end],
        samples: top.samples,
        server_pid,
        typing_expected,
        allow_server_closes,
        db,
        rss_baseline,
        soak: (shape.interval_ms > 0).then_some(SoakCfg {
            interval_ms: shape.interval_ms,
            warmup_ms: shape.warmup_ms,
            duration_ms: shape.duration_ms,
            max_growth_pct: shape.max_growth_pct,
        }),
    };
    print!("{}", report::table(&r));
    let storm = storm_samples.map(|samples| {
        crate::storm::report(&crate::storm::Inputs {
            storm: &r.stats.storm,
            c: &r.stats.c,
            samples: &samples,
            go_us: r.go_us,
            drop_ms: plan.knobs.storm_drop_ms,
            target_ms: shape.storm_target_ms,
            server: server_pid.is_some(),
        })
    });
    if let Some((text, _)) = &storm {
        print!("{text}");
    }
    if let Some(path) = json_path {
        let mut json = report::to_json(&r);
        if let Some((_, j)) = storm {
            json["storm"] = j;
        }
        let text = serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?;
        std::fs::write(&path, text).map_err(|e| format!("{path}: {e}"))?;
    }
    if let Some(path) = plot_path {
        std::fs::write(&path, crate::plot::plot(&r)).map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(report::verdict(&r).0)
}

/// Waits (up to `max_secs`) for the server's RSS to stop moving after provisioning:
/// sampled every 250 ms, settled when four samples in a row (a second) agree within
/// 1 % (see `checks::settled`). The baseline is the last sample either way.
fn settle_rss(
    sampler: &mut Sampler,
    max_secs: f64,
    before_provision: Sample,
    server_age_secs: Option<f64>,
) -> RssBaseline {
    let start = Instant::now();
    let mut rss = vec![sampler.sample().server_rss_kb];
    while !checks::settled(&rss, 4) && start.elapsed().as_secs_f64() < max_secs {
        std::thread::sleep(std::time::Duration::from_millis(250));
        rss.push(sampler.sample().server_rss_kb);
    }
    let settled = checks::settled(&rss, 4);
    eprintln!(
        "server rss baseline {:.1} MB after provisioning, {} after {:.1} s",
        *rss.last().unwrap_or(&0) as f64 / 1024.0,
        if settled { "settled" } else { "NOT settled" },
        start.elapsed().as_secs_f64()
    );
    RssBaseline {
        settled,
        waited_secs: start.elapsed().as_secs_f64(),
        before_provision_kb: before_provision.server_rss_kb,
        server_age_secs,
    }
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn urls() {
        assert_eq!(normalize("http://127.0.0.1:3200"), "127.0.0.1:3200");
        assert_eq!(normalize("ws://localhost:3000/ws?x"), "localhost:3000");
        assert_eq!(normalize("127.0.0.1:3000"), "127.0.0.1:3000");
    }
}
