//! `storm`: a reconnect storm. One open-loop sender per room keeps a steady stream
//! going; every receiver drops at the same moment, stays away while `--missed`
//! messages per room pass, then all rejoin together with `last_seen_seq`. Each must
//! end with every message exactly once, in order (the usual stream checks); the
//! report adds how long each took to reach its room's head at the rejoin, and how
//! long until the last one had (see `crate::storm`).

use super::{Shape, many, positive, senders};
use crate::args::Args;
use crate::plan::Role;

/// Help text.
pub const HELP: &str = "\
storm: every receiver drops at once and all rejoin together with last_seen_seq
  --sockets N      receivers (10000; quick 200)   --rooms R   (1000; quick 20)
  --missed M       messages per room while away (100; quick 150: more than a history page)
  --interval-ms I  between one room's messages: one sender per room (250; quick 20)
  --before-ms B    stream before the storm (3000; quick 1000)
  --after-ms A     stream after the rejoin (10000; quick 3000)
  --target-secs T  every socket caught up within T s of the rejoin (5): reported, not a failure
Users: one per receiver (quick: 20, within a default node's 30 registrations a minute).
At full size start chatd with --config bench/storm.toml (loadtest/server.toml and cheap
password hashing): a default node refuses the 31st registration, and the run stops there.
Catch-up targets are known per driver: --threads and --procs must divide --rooms.";

/// The shape.
pub fn shape(a: &Args) -> Result<Shape, String> {
    let n = positive("sockets", a.sized("sockets", 10_000, 200)?)?;
    let rooms = positive("rooms", a.sized("rooms", 1000, 20)?)?;
    let missed = positive("missed", a.sized("missed", 100, 150)?)?;
    let iv = positive("interval-ms", a.sized("interval-ms", 250, 20)?)?;
    let before = a.sized("before-ms", 3000, 1000)?.max(500);
    let after = a.sized("after-ms", 10_000, 3000)?;
    let target: f64 = a.num("target-secs", 5.0)?;
    // A room's catch-up target is the highest seq its sender has had acked, known only
    // in the driver that holds the sender: sender r and the receivers of room r share
    // a driver when the number of drivers divides the number of rooms.
    let drivers = a.num("threads", 1u64)?.max(1) * a.num("procs", 1u64)?.max(1);
    if rooms % drivers != 0 {
        return Err(format!(
            "--threads x --procs ({drivers}) must divide --rooms ({rooms}) for storm"
        ));
    }
    let mut conns = senders(rooms, rooms, iv * 1000, 0, 0);
    conns.extend(many(n, rooms, Role::Stormer));
    let away = missed * iv;
    let mut shape = Shape::new(
        rooms as usize,
        conns,
        format!(
            "{n} receivers over {rooms} rooms, one sender per room every {iv} ms; all drop after {before} ms, stay away {away} ms ({missed} messages a room), rejoin together; {after} ms more stream"
        ),
    );
    shape.users = if a.flag("quick") { 20 } else { n as usize };
    shape.storm_drop_ms = before;
    shape.storm_back_ms = before + away;
    shape.duration_ms = before + away + after;
    shape.storm_target_ms = (target * 1000.0) as u64;
    Ok(shape)
}
