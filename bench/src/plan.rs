//! The plan of a run: who connects as whom, to which room, doing what. The parent
//! builds it after provisioning and hands each child process its share as JSON.

use serde::{Deserialize, Serialize};

/// What a socket does during the run.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub enum Role {
    /// Joins its room and checks every message it receives; reconnects with
    /// `last_seen_seq` when the server closes it.
    Receiver,
    /// A receiver that also drops its connection at random times and rejoins.
    Reconnector,
    /// Sends messages to its room (it does not join it).
    Sender {
        /// Interval between sends in µs; 0 = closed loop (keep `window` in flight).
        interval_us: u64,
        /// Messages to send; 0 = until the run's duration is over.
        count: u64,
        /// Unacknowledged messages allowed in flight (closed loop).
        window: u32,
        /// Delay of the first send after the start, to spread senders out.
        offset_us: u64,
    },
    /// Joins its room and alternates typing_start / typing_stop.
    Typer,
    /// A slot for connect → join → leave → close cycles.
    Churner,
    /// A receiver that drops with every other one at `storm_drop_ms` and rejoins with
    /// `last_seen_seq` with all of them at `storm_back_ms` (`storm`).
    Stormer,
}

/// One socket of the plan.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConnSpec {
    /// Index of the socket in the whole run (unique across processes).
    pub id: u32,
    /// Index of the user whose token it uses.
    pub user: u32,
    /// Index of its room.
    pub room: u32,
    /// What it does.
    pub role: Role,
}

/// Settings every driver needs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Knobs {
    /// Run length in ms (0 = until every sender has sent its count).
    pub duration_ms: u64,
    /// Message content length in bytes.
    pub size: usize,
    /// Connections being set up at once, per driver thread.
    pub connect_concurrency: usize,
    /// Source addresses 127.0.0.1..=N to spread sockets over (0 = let the kernel pick).
    pub source_addrs: u32,
    /// How long to wait for acks and for receivers to catch up after the run, in ms.
    pub drain_ms: u64,
    /// Churn cycles per second, whole run.
    pub churn_rate: f64,
    /// Mean time between planned drops of a reconnecting receiver, in ms.
    pub drop_mean_ms: u64,
    /// Interval between a typer's typing events, in ms.
    pub typing_interval_ms: u64,
    /// Driver threads per process.
    pub threads: usize,
    /// Longest a reconnecting receiver stays away after a planned drop, in ms
    /// (uniformly random; 0 = reconnect at once).
    pub offline_ms: u64,
    /// Length of the intervals of the per-interval figures, in ms (0 = none).
    pub interval_ms: u64,
    /// Sockets go to the server chosen by their room, not by their own index, so
    /// that each server holds the sockets of its share of the rooms.
    #[serde(default)]
    pub by_room: bool,
    /// When not 0: sockets go to the server chosen by their room's notification shard
    /// out of this many (what a load balancer with room affinity would do).
    #[serde(default)]
    pub by_shard: u16,
    /// When every storm receiver drops, in ms after the start (`storm`).
    #[serde(default)]
    pub storm_drop_ms: u64,
    /// When they all rejoin, in ms after the start (`storm`).
    #[serde(default)]
    pub storm_back_ms: u64,
}

/// Everything a process needs to drive its share of the sockets.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Plan {
    /// Scenario name.
    pub scenario: String,
    /// Servers, `host:port`; socket `id` goes to `servers[id % len]` (with `by_room`,
    /// `servers[room % len]`).
    pub servers: Vec<String>,
    /// Access token per user.
    pub tokens: Vec<String>,
    /// User id per user (to match typing events to their sender).
    pub user_ids: Vec<String>,
    /// Room ids.
    pub rooms: Vec<String>,
    /// Each room's last seq before the run (its membership entries): where tracking
    /// starts.
    #[serde(default)]
    pub heads: Vec<u64>,
    /// The sockets.
    pub conns: Vec<ConnSpec>,
    /// Every typer of the whole run (not only this share), in socket order: what a
    /// watcher checks the typing events it gets against.
    pub typers: Vec<TyperSpec>,
    /// Settings.
    pub knobs: Knobs,
}

/// A typer, as every watcher needs to know it.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TyperSpec {
    /// Socket index in the run.
    pub id: u32,
    /// User index.
    pub user: u32,
    /// Room index.
    pub room: u32,
}

impl Plan {
    /// The share of `part` out of `parts`: every `parts`-th socket, so each share
    /// gets the same mix of roles.
    /// The churn rate is split in proportion to the churn slots of the share.
    pub fn share(&self, part: usize, parts: usize) -> Plan {
        let conns: Vec<ConnSpec> = self
            .conns
            .iter()
            .enumerate()
            .filter(|(i, _)| i % parts == part)
            .map(|(_, c)| c.clone())
            .collect();
        let mut knobs = self.knobs.clone();
        let mine = conns.iter().filter(|c| c.role == Role::Churner).count();
        knobs.churn_rate = match self.churners() {
            0 => 0.0,
            all => self.knobs.churn_rate * mine as f64 / all as f64,
        };
        Plan {
            conns,
            knobs,
            ..self.clone()
        }
    }

    /// The typers among `conns`.
    pub fn typer_specs(conns: &[ConnSpec]) -> Vec<TyperSpec> {
        conns
            .iter()
            .filter(|c| c.role == Role::Typer)
            .map(|c| TyperSpec {
                id: c.id,
                user: c.user,
                room: c.room,
            })
            .collect()
    }

    /// Total churn slots in the plan.
    pub fn churners(&self) -> usize {
        self.conns
            .iter()
            .filter(|c| c.role == Role::Churner)
            .count()
    }
}
