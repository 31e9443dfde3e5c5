//! The scenarios: each turns its command-line knobs (with defaults, and small sizes
//! under `--quick`) into a [`Shape`]: rooms, sockets with roles, timings.

use crate::args::Args;
use crate::plan::Role;

pub mod churn;
pub mod connections;
pub mod delivery;
pub mod fanout;
pub mod reconnect;
pub mod soak;
pub mod storm;
pub mod throughput;
pub mod typing;

/// What a scenario asks for; the runner provisions it and builds the plan.
pub struct Shape {
    /// Rooms to create.
    pub rooms: usize,
    /// Sockets: role and room index, senders first.
    pub conns: Vec<(Role, u32)>,
    /// Users to register unless `--users` says otherwise.
    pub users: usize,
    /// Fewest users that still make sense (typing needs one per typer).
    pub min_users: usize,
    /// Run length in ms (0 = until every sender has sent its count).
    pub duration_ms: u64,
    /// Churn cycles per second.
    pub churn_rate: f64,
    /// Mean time between planned drops (reconnect).
    pub drop_mean_ms: u64,
    /// Typing event interval.
    pub typing_interval_ms: u64,
    /// Longest time a dropped receiver stays offline (reconnect).
    pub offline_ms: u64,
    /// The shape in words, for the report header.
    pub summary: String,
    /// Length of the per-interval figures, in ms (0 = none).
    pub interval_ms: u64,
    /// Growth of the server's RSS and descriptors is measured from this long after
    /// the start (soak).
    pub warmup_ms: u64,
    /// Largest growth of RSS or descriptors after warm-up, in % (soak; 0 = not checked).
    pub max_growth_pct: f64,
    /// Take the server RSS baseline after provisioning once it has settled
    /// (connections).
    pub settle_rss: bool,
    /// When every storm receiver drops, in ms after the start (`storm`).
    pub storm_drop_ms: u64,
    /// When they all rejoin, in ms after the start (`storm`).
    pub storm_back_ms: u64,
    /// The time the last storm socket should catch up within, in ms (reported).
    pub storm_target_ms: u64,
}

impl Shape {
    /// A shape with these sockets and defaults for everything else.
    pub fn new(rooms: usize, conns: Vec<(Role, u32)>, summary: String) -> Shape {
        let n = conns.len();
        Shape {
            rooms,
            conns,
            users: n,
            min_users: 1,
            duration_ms: 0,
            churn_rate: 0.0,
            drop_mean_ms: 1000,
            typing_interval_ms: 500,
            offline_ms: 0,
            summary,
            interval_ms: 0,
            warmup_ms: 0,
            max_growth_pct: 0.0,
            settle_rss: false,
            storm_drop_ms: 0,
            storm_back_ms: 0,
            storm_target_ms: 0,
        }
    }
}

/// Every scenario name.
pub const NAMES: [&str; 9] = [
    "delivery",
    "throughput",
    "fanout",
    "connections",
    "churn",
    "reconnect",
    "typing",
    "soak",
    "storm",
];

/// The shape of scenario `name`.
pub fn build(name: &str, a: &Args) -> Result<Shape, String> {
    match name {
        "delivery" => delivery::shape(a),
        "throughput" => throughput::shape(a),
        "fanout" => fanout::shape(a),
        "connections" => connections::shape(a),
        "churn" => churn::shape(a),
        "reconnect" => reconnect::shape(a),
        "typing" => typing::shape(a),
        "soak" => soak::shape(a),
        "storm" => storm::shape(a),
        _ => Err(format!(
            "unknown scenario `{name}`; one of: {}",
            NAMES.join(", ")
        )),
    }
}

/// The help text of scenario `name`.
pub fn help(name: &str) -> Option<&'static str> {
    Some(match name {
        "delivery" => delivery::HELP,
        "throughput" => throughput::HELP,
        "fanout" => fanout::HELP,
        "connections" => connections::HELP,
        "churn" => churn::HELP,
        "reconnect" => reconnect::HELP,
        "typing" => typing::HELP,
        "soak" => soak::HELP,
        "storm" => storm::HELP,
        _ => return None,
    })
}

/// `n` senders spread over `rooms`. Open loop (`interval_us > 0`): first sends spread
/// evenly over one interval so the load is smooth. Closed loop: `window` in flight.
pub fn senders(n: u64, rooms: u64, interval_us: u64, count: u64, window: u32) -> Vec<(Role, u32)> {
    (0..n)
        .map(|i| {
            let role = Role::Sender {
                interval_us,
                count,
                window,
                offset_us: if interval_us > 0 {
                    i * interval_us / n.max(1)
                } else {
                    0
                },
            };
            (role, (i % rooms.max(1)) as u32)
        })
        .collect()
}

/// `n` sockets of one role spread over `rooms`.
pub fn many(n: u64, rooms: u64, role: Role) -> Vec<(Role, u32)> {
    (0..n).map(|i| (role, (i % rooms.max(1)) as u32)).collect()
}

/// Interval between one sender's sends for a total `rate` (msgs/s) over `senders`.
pub fn interval_for(rate: f64, senders: u64) -> Result<u64, String> {
    if rate <= 0.0 {
        return Err("--rate must be positive".into());
    }
    Ok(((senders.max(1) as f64) * 1e6 / rate).max(1.0) as u64)
}

/// Fails unless `v` is at least 1.
pub fn positive(name: &str, v: u64) -> Result<u64, String> {
    if v == 0 {
        Err(format!("--{name} must be at least 1"))
    } else {
        Ok(v)
    }
}
