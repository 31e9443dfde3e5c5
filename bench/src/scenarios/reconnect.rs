//! `reconnect`: receivers drop their connection at random times (half with a close
//! frame, half abruptly) and rejoin with `last_seen_seq` while senders keep a stream
//! going. Every receiver must end with every message exactly once, in order.

use super::{Shape, many, positive, senders};
use crate::args::Args;
use crate::plan::Role;

/// Help text.
pub const HELP: &str = "\
reconnect: receivers drop and rejoin with last_seen_seq during a stream
  --senders S      (4; quick 2)        --interval-ms I  per sender (50; quick 20)
  --receivers R    (50; quick 10)      --rooms N        (1)
  --duration SEC   (10; quick 4)       --drop-mean-ms D mean time between drops (1000; quick 500)
  --offline-ms O   longest stay offline after a drop, uniform (2000; quick 1500): with the
                   stream fast enough a rejoin catches up over more than one history page
Latency counts messages caught up after a rejoin too (their wait includes the time offline).";

/// The shape.
pub fn shape(a: &Args) -> Result<Shape, String> {
    let s = positive("senders", a.sized("senders", 4, 2)?)?;
    let iv = positive("interval-ms", a.sized("interval-ms", 50, 20)?)?;
    let offline = a.sized("offline-ms", 2000, 1500)?;
    let r = positive("receivers", a.sized("receivers", 50, 10)?)?;
    let rooms = positive("rooms", a.num("rooms", 1)?)?;
    let secs = positive("duration", a.sized("duration", 10, 4)?)?;
    let drop = positive("drop-mean-ms", a.sized("drop-mean-ms", 1000, 500)?)?;
    let mut conns = senders(s, rooms, iv * 1000, 0, 0);
    conns.extend(many(r, rooms, Role::Reconnector));
    let mut shape = Shape::new(
        rooms as usize,
        conns,
        format!(
            "{s} senders every {iv} ms, {r} receivers dropping every ~{drop} ms for up to {offline} ms, {rooms} room(s), {secs} s"
        ),
    );
    shape.duration_ms = secs * 1000;
    shape.drop_mean_ms = drop;
    shape.offline_ms = offline;
    Ok(shape)
}
