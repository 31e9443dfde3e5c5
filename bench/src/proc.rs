//! CPU and memory of the processes around a run, read from /proc: the server (by
//! `--server-pid`), PostgreSQL (every process named `postgres`) and the harness itself.

use serde::Serialize;
use std::collections::HashMap;

/// One process's CPU time (ticks) and resident memory (KiB).
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// utime + stime, in clock ticks.
    pub ticks: u64,
    /// VmRSS in KiB.
    pub rss_kb: u64,
}

/// Reads `/proc/<pid>/stat` (CPU) and `/proc/<pid>/status` (RSS).
pub fn usage(pid: u32) -> Option<Usage> {
    let ticks = stat_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    Some(Usage { ticks, rss_kb })
}

/// utime + stime from a stat line. The command name may hold spaces and
/// parentheses, so fields are counted from the last `)`.
fn stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ")" come fields 3 (state) onwards: utime is field 14, stime field 15.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// One sample of everything watched.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Sample {
    /// When (unix µs).
    pub t_us: u64,
    /// Server RSS in KiB (0 without a server pid).
    pub server_rss_kb: u64,
    /// Server CPU ticks so far.
    pub server_ticks: u64,
    /// PostgreSQL CPU ticks accumulated by this sampler.
    pub pg_ticks: u64,
    /// Harness CPU ticks (this process and its children).
    pub harness_ticks: u64,
    /// Harness RSS in KiB (this process and its children).
    pub harness_rss_kb: u64,
    /// Open descriptors of the server (entries of /proc/<pid>/fd; 0 without a pid).
    pub server_fds: u64,
}

/// Open descriptors of `pid` (entries of /proc/<pid>/fd), if readable.
pub fn fd_count(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// Seconds since process `pid` started (from field 22 of /proc/<pid>/stat and the
/// system uptime), if known.
pub fn age_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    // After ")" come fields 3 onwards: starttime is field 22.
    let start: f64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(uptime - start / crate::util::clock_ticks() as f64)
}

/// Samples the server, PostgreSQL and the harness.
pub struct Sampler {
    server: Option<u32>,
    /// Child processes of the harness.
    pub children: Vec<u32>,
    pg_seen: HashMap<u32, u64>,
    pg_total: u64,
}

impl Sampler {
    /// A sampler for the server `pid` (if given).
    pub fn new(server: Option<u32>) -> Sampler {
        let mut s = Sampler {
            server,
            children: Vec::new(),
            pg_seen: HashMap::new(),
            pg_total: 0,
        };
        s.postgres();
        s.pg_total = 0;
        s
    }

    /// Whether the server pid exists.
    pub fn server_alive(&self) -> bool {
        self.server.is_some_and(|p| usage(p).is_some())
    }

    /// CPU ticks PostgreSQL used since the last call. Backends come and go: each
    /// is counted from the first time it is seen (a backend that starts between two
    /// samples counts its whole life), an exited one keeps what was counted.
    fn postgres(&mut self) -> u64 {
        let mut now = HashMap::new();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return self.pg_total;
        };
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            if !stat.contains("(postgres)") {
                continue;
            }
            if let Some(t) = stat_ticks(&stat) {
                let before = self.pg_seen.get(&pid).copied().unwrap_or(0);
                self.pg_total += t.saturating_sub(before);
                now.insert(pid, t);
            }
        }
        self.pg_seen = now;
        self.pg_total
    }

    /// Takes a sample now.
    pub fn sample(&mut self) -> Sample {
        let server = self.server.and_then(usage).unwrap_or_default();
        let mut harness = usage(std::process::id()).unwrap_or_default();
        for &c in &self.children {
            let u = usage(c).unwrap_or_default();
            harness.ticks += u.ticks;
            harness.rss_kb += u.rss_kb;
        }
        Sample {
            t_us: crate::util::now_us(),
            server_fds: self.server.and_then(fd_count).unwrap_or(0),
            server_rss_kb: server.rss_kb,
            server_ticks: server.ticks,
            pg_ticks: self.postgres(),
            harness_ticks: harness.ticks,
            harness_rss_kb: harness.rss_kb,
        }
    }
}

/// CPU use between two samples as a percentage of one core.
pub fn cpu_pct(a: &Sample, b: &Sample, ticks: fn(&Sample) -> u64) -> f64 {
    let dt = b.t_us.saturating_sub(a.t_us) as f64 / 1e6;
    if dt <= 0.0 {
        return 0.0;
    }
    let dticks = ticks(b).saturating_sub(ticks(a)) as f64;
    dticks / crate::util::clock_ticks() as f64 / dt * 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_with_odd_name() {
        let line = "42 (we (ird) name) S 1 42 42 0 -1 4194304 100 0 0 0 250 30 0 0 20 0 4 0 1 1 1";
        assert_eq!(stat_ticks(line), Some(280));
    }

    #[test]
    fn reads_own_usage() {
        let u = usage(std::process::id()).unwrap();
        assert!(u.rss_kb > 0);
        assert!(fd_count(std::process::id()).unwrap() >= 3);
        let age = age_secs(std::process::id()).unwrap();
        assert!((0.0..3600.0).contains(&age), "{age}");
    }
}
