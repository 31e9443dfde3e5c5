//! Keeps the driver threads (and child processes) of a run in step: phase barriers
//! with merged values, a progress line every second, and the merging of results.
//! A child process speaks to its parent in JSON lines over stdin/stdout.

use crate::driver::{Ctx, Driver};
use crate::plan::Plan;
use crate::stats::{LIVE_FIELDS, Live, Stats, merge_snapshots};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, unbounded};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

/// The barriers of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PhaseId {
    /// Setup done; value `[ok, failed]` (summed); reply `[start unix µs]`.
    Ready,
    /// Sending done; value a [`SentValue`] (see there); reply the merge.
    Sent,
}

/// What every driver knows when it stops sending, merged over all of them: the
/// highest acked seq and the number of acks per room, and the typing events each
/// typer of the plan sent. As a barrier value it is one `Vec<u64>`:
/// `[rooms, max seq per room.., acks per room.., starts per typer.., stops per typer..]`,
/// merged by taking the maximum of the first block and summing the rest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SentValue {
    /// Highest acked seq per room.
    pub room_max: Vec<u64>,
    /// Acks per room.
    pub room_acked: Vec<u64>,
    /// typing_start events sent, per typer of the plan (`Plan::typers` order).
    pub typer_starts: Vec<u64>,
    /// typing_stop events sent, per typer of the plan.
    pub typer_stops: Vec<u64>,
}

impl SentValue {
    /// The barrier value.
    pub fn encode(&self) -> Vec<u64> {
        let mut v = vec![self.room_max.len() as u64];
        v.extend_from_slice(&self.room_max);
        v.extend_from_slice(&self.room_acked);
        v.extend_from_slice(&self.typer_starts);
        v.extend_from_slice(&self.typer_stops);
        v
    }

    /// Back from a barrier value.
    pub fn decode(v: &[u64]) -> SentValue {
        let rooms = v.first().copied().unwrap_or(0) as usize;
        let rest = v.get(1..).unwrap_or(&[]);
        let (room_max, rest) = rest.split_at(rooms.min(rest.len()));
        let (room_acked, rest) = rest.split_at(rooms.min(rest.len()));
        let (typer_starts, typer_stops) = rest.split_at(rest.len() / 2);
        SentValue {
            room_max: room_max.to_vec(),
            room_acked: room_acked.to_vec(),
            typer_starts: typer_starts.to_vec(),
            typer_stops: typer_stops.to_vec(),
        }
    }
}

/// From a member (driver thread or child) to its coordinator.
#[derive(Debug)]
pub enum Up {
    /// The member reached a barrier.
    Phase {
        /// Which barrier.
        phase: PhaseId,
        /// Its value.
        value: Vec<u64>,
    },
    /// A child's progress counters.
    Progress {
        /// Member index.
        member: usize,
        /// Counters.
        snap: [u64; LIVE_FIELDS],
    },
    /// The member's final figures.
    Result(Box<Stats>),
    /// The member could not run.
    Failed(String),
}

/// From the coordinator to a member: a barrier is passed.
#[derive(Clone, Debug)]
pub struct Down {
    /// Which barrier.
    pub phase: PhaseId,
    /// The reply value.
    pub value: Vec<u64>,
}

/// One line of the parent/child protocol.
#[derive(Serialize, Deserialize)]
enum Line {
    Phase { phase: PhaseId, value: Vec<u64> },
    Progress { snap: Vec<u64> },
    Result { stats: Box<Stats> },
}

/// Merges two barrier values.
fn merge(phase: PhaseId, acc: &mut Vec<u64>, v: &[u64]) {
    if acc.is_empty() {
        acc.extend_from_slice(v);
        return;
    }
    // Sent: the first value is the number of rooms (the same everywhere), then that
    // many maxima; everything else is summed.
    let maxima = match phase {
        PhaseId::Sent => acc[0] as usize,
        PhaseId::Ready => 0,
    };
    for (i, (a, b)) in acc.iter_mut().zip(v).enumerate() {
        *a = match phase {
            PhaseId::Sent if i == 0 => *a,
            PhaseId::Sent if i <= maxima => (*a).max(*b),
            _ => *a + b,
        };
    }
}

/// What the coordinator answers to: the top of the run, or a parent process.
pub trait Upstream {
    /// Every member reached `phase`; returns the reply for all of them.
    fn phase(&mut self, phase: PhaseId, merged: Vec<u64>) -> Vec<u64>;
    /// About once a second, with the summed counters.
    fn progress(&mut self, snap: [u64; LIVE_FIELDS]);
}

/// A member as the coordinator sees it.
pub enum Member {
    /// A driver thread of this process.
    Thread {
        /// Its control channel.
        down: Sender<Down>,
        /// Its counters.
        live: Arc<Live>,
    },
    /// A child process.
    Child {
        /// Where its replies go.
        stdin: ChildStdin,
        /// Its latest counters.
        last: [u64; LIVE_FIELDS],
    },
}

/// Runs the barriers until every member has reported its result.
pub fn control(
    mut members: Vec<Member>,
    rx: Receiver<Up>,
    up: &mut dyn Upstream,
) -> Result<Stats, String> {
    let n = members.len();
    let mut waiting: Vec<(PhaseId, usize, Vec<u64>)> = Vec::new();
    let mut total = Stats::default();
    let mut results = 0;
    let mut tick = Instant::now() + Duration::from_secs(1);
    loop {
        let msg = rx.recv_timeout(tick.saturating_duration_since(Instant::now()));
        match msg {
            Ok(Up::Phase { phase, value, .. }) => {
                let i = match waiting.iter().position(|w| w.0 == phase) {
                    Some(i) => i,
                    None => {
                        waiting.push((phase, 0, Vec::new()));
                        waiting.len() - 1
                    }
                };
                merge(phase, &mut waiting[i].2, &value);
                waiting[i].1 += 1;
                if waiting[i].1 == n {
                    let (_, _, merged) = waiting.remove(i);
                    let reply = up.phase(phase, merged);
                    for m in &mut members {
                        send_down(m, phase, &reply)?;
                    }
                }
            }
            Ok(Up::Progress { member, snap }) => {
                if let Some(Member::Child { last, .. }) = members.get_mut(member) {
                    *last = snap;
                }
            }
            Ok(Up::Result(s)) => {
                total.merge(&s);
                results += 1;
                if results == n {
                    return Ok(total);
                }
            }
            Ok(Up::Failed(e)) => return Err(e),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Err("every member is gone".into()),
        }
        if Instant::now() >= tick {
            tick += Duration::from_secs(1);
            let mut sum = [0u64; LIVE_FIELDS];
            for m in &members {
                match m {
                    Member::Thread { live, .. } => merge_snapshots(&mut sum, &live.snapshot()),
                    Member::Child { last, .. } => merge_snapshots(&mut sum, last),
                }
            }
            up.progress(sum);
        }
    }
}

fn send_down(m: &mut Member, phase: PhaseId, value: &[u64]) -> Result<(), String> {
    match m {
        Member::Thread { down, .. } => {
            let _ = down.send(Down {
                phase,
                value: value.to_vec(),
            });
            Ok(())
        }
        Member::Child { stdin, .. } => {
            let line = serde_json::to_string(&Line::Phase {
                phase,
                value: value.to_vec(),
            })
            .map_err(|e| e.to_string())?;
            writeln!(stdin, "{line}")
                .and_then(|_| stdin.flush())
                .map_err(|e| format!("child gone: {e}"))
        }
    }
}

/// Starts one driver thread per share of `plan`; they report on `up`.
pub fn spawn_threads(plan: &Plan, up: &Sender<Up>) -> Vec<Member> {
    let threads = plan.knobs.threads.max(1);
    let typing: Arc<Vec<AtomicU64>> =
        Arc::new((0..plan.tokens.len()).map(|_| AtomicU64::new(0)).collect());
    (0..threads)
        .map(|t| {
            let (down_tx, down_rx) = unbounded();
            let live = Arc::new(Live::default());
            let ctx = Ctx {
                up: up.clone(),
                down: down_rx,
                live: live.clone(),
                typing: typing.clone(),
            };
            let share = plan.share(t, threads);
            let up = up.clone();
            std::thread::Builder::new()
                .name(format!("driver-{t}"))
                .spawn(move || {
                    // A driver that dies must say so: the others would wait for it at
                    // the next barrier for ever.
                    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        Driver::new(share, ctx, t as u64).map(Driver::run)
                    }));
                    let failure = match run {
                        Ok(Ok(())) => return,
                        Ok(Err(e)) => format!("driver {t}: {e}"),
                        Err(_) => format!("driver {t} panicked"),
                    };
                    let _ = up.send(Up::Failed(failure));
                })
                .expect("spawn driver thread");
            Member::Thread {
                down: down_tx,
                live,
            }
        })
        .collect()
}

/// Starts `procs` copies of this program in child mode, each with its share of the
/// plan; their lines come back on `up`. Returns the members and the child handles.
pub fn spawn_children(
    plan: &Plan,
    procs: usize,
    up: &Sender<Up>,
) -> Result<(Vec<Member>, Vec<Child>), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut members = Vec::new();
    let mut children = Vec::new();
    for k in 0..procs {
        let mut child = Command::new(&exe)
            .arg("--child")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawn child: {e}"))?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        let share = serde_json::to_string(&plan.share(k, procs)).map_err(|e| e.to_string())?;
        writeln!(stdin, "{share}").map_err(|e| format!("child {k}: {e}"))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let up = up.clone();
        std::thread::spawn(move || read_child(k, stdout, &up));
        members.push(Member::Child {
            stdin,
            last: [0; LIVE_FIELDS],
        });
        children.push(child);
    }
    Ok((members, children))
}

fn read_child(k: usize, stdout: std::process::ChildStdout, up: &Sender<Up>) {
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let msg = match serde_json::from_str::<Line>(&line) {
            Ok(Line::Phase { phase, value }) => Up::Phase { phase, value },
            Ok(Line::Progress { snap }) => {
                let mut s = [0u64; LIVE_FIELDS];
                for (a, b) in s.iter_mut().zip(snap) {
                    *a = b;
                }
                Up::Progress { member: k, snap: s }
            }
            Ok(Line::Result { stats }) => {
                let _ = up.send(Up::Result(stats));
                return;
            }
            Err(e) => Up::Failed(format!("child {k} said something odd ({e}): {line}")),
        };
        let _ = up.send(msg);
    }
    let _ = up.send(Up::Failed(format!("child {k} exited without a result")));
}

/// The parent, seen from a child process.
struct Parent {
    input: std::io::StdinLock<'static>,
}

impl Parent {
    fn say(line: &Line) {
        let s = serde_json::to_string(line).expect("serialisable");
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{s}");
        let _ = out.flush();
    }
}

impl Upstream for Parent {
    fn phase(&mut self, phase: PhaseId, merged: Vec<u64>) -> Vec<u64> {
        Parent::say(&Line::Phase {
            phase,
            value: merged,
        });
        let mut line = String::new();
        loop {
            line.clear();
            if self.input.read_line(&mut line).unwrap_or(0) == 0 {
                // The parent is gone: nothing left to do.
                std::process::exit(3);
            }
            if let Ok(Line::Phase { phase: p, value }) = serde_json::from_str(&line)
                && p == phase
            {
                return value;
            }
        }
    }

    fn progress(&mut self, snap: [u64; LIVE_FIELDS]) {
        Parent::say(&Line::Progress {
            snap: snap.to_vec(),
        });
    }
}

/// Child mode: reads its plan on stdin, drives it, prints its result on stdout.
pub fn child_main() -> i32 {
    crate::util::raise_nofile_limit();
    let mut input = std::io::stdin().lock();
    let mut first = String::new();
    if input.read_line(&mut first).is_err() {
        return 2;
    }
    let plan: Plan = match serde_json::from_str(&first) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("child: bad plan: {e}");
            return 2;
        }
    };
    let (tx, rx) = unbounded();
    let members = spawn_threads(&plan, &tx);
    drop(tx);
    let mut parent = Parent { input };
    match control(members, rx, &mut parent) {
        Ok(stats) => {
            Parent::say(&Line::Result {
                stats: Box::new(stats),
            });
            0
        }
        Err(e) => {
            eprintln!("child: {e}");
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn barrier_values_merge() {
        let mut a = Vec::new();
        merge(PhaseId::Ready, &mut a, &[3, 1]);
        merge(PhaseId::Ready, &mut a, &[2, 0]);
        assert_eq!(a, vec![5, 1]);
        let one = SentValue {
            room_max: vec![10, 4],
            room_acked: vec![10, 4],
            typer_starts: vec![3],
            typer_stops: vec![2],
        };
        let two = SentValue {
            room_max: vec![7, 9],
            room_acked: vec![7, 5],
            typer_starts: vec![0],
            typer_stops: vec![1],
        };
        assert_eq!(SentValue::decode(&one.encode()), one);
        let mut s = Vec::new();
        merge(PhaseId::Sent, &mut s, &one.encode());
        merge(PhaseId::Sent, &mut s, &two.encode());
        assert_eq!(
            SentValue::decode(&s),
            SentValue {
                room_max: vec![10, 9],
                room_acked: vec![17, 9],
                typer_starts: vec![3],
                typer_stops: vec![3],
            }
        );
    }
}
