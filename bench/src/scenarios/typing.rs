//! `typing`: typers alternate typing_start and typing_stop in their rooms; every
//! socket of another user joined to the room must see each event exactly once (a
//! start, then its stop), and none from a user not typing in its room. The protocol
//! calls typing best-effort under overload; this scenario is not overload, so a
//! missed, repeated or foreign event fails the run.

use super::{Shape, many, positive};
use crate::args::Args;
use crate::plan::Role;

/// Help text.
pub const HELP: &str = "\
typing: typers alternate typing_start / typing_stop; the room's other sockets watch
  --typers T       (50; quick 10)      --watchers W  silent sockets (50; quick 10)
  --rooms N        (5; quick 2)        --interval-ms I between a typer's events (500; quick 300)
  --duration SEC   (10; quick 3)
  Each typer needs a user of its own (latency is matched by user). The server relays
  at most one start a second per socket and room, so a typer skips a start due less
  than 1.25 s after its last one (every event it writes is then due at the watchers).
Pass: every watcher (typers watch too) gets every start and stop of every other
user typing in its room, once (typing_missed_starts, typing_missed_stops,
typing_repeated = 0; one extra stop after a last start is allowed), and none from
anyone else (typing_foreign = 0).";

/// The shape.
pub fn shape(a: &Args) -> Result<Shape, String> {
    let t = positive("typers", a.sized("typers", 50, 10)?)?;
    let w = a.sized("watchers", 50, 10)?;
    let rooms = positive("rooms", a.sized("rooms", 5, 2)?)?;
    let iv = positive("interval-ms", a.sized("interval-ms", 500, 300)?)?;
    let secs = positive("duration", a.sized("duration", 10, 3)?)?;
    let mut conns = many(t, rooms, Role::Typer);
    conns.extend(many(w, rooms, Role::Receiver));
    let mut shape = Shape::new(
        rooms as usize,
        conns,
        format!("{t} typers every {iv} ms and {w} watchers over {rooms} rooms, {secs} s"),
    );
    shape.duration_ms = secs * 1000;
    shape.typing_interval_ms = iv;
    shape.min_users = t as usize;
    Ok(shape)
}
