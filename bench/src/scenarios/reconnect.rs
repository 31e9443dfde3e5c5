//! `reconnect`: receivers drop their connection at random times (half with a close
//! frame, half abruptly) and rejoin with `last_seen_seq` while senders keep a stream
//! going. Every receiver must end with every message exactly once, in order.

use super::{Shape, many, positive, senders};
use crate::args::Args;
use crate::plan::Role;

/// Help text.
pub const HELP: &str = "\
reconnect: receivers drop and rejoin with last_seen_seq during a stream
  --senders S      (4; quick 2)        --interval-ms I  per sender (50)
  --receivers R    (50; quick 10)      --rooms N        (1)
  --duration SEC   (10; quick 4)       --drop-mean-ms D mean time between drops (1000; quick 500)";

/// The shape.
pub fn shape(a: &Args) -> Result<Shape, String> {
    let s = positive("senders", a.sized("senders", 4, 2)?)?;
    let iv = positive("interval-ms", a.num("interval-ms", 50)?)?;
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
            "{s} senders every {iv} ms, {r} receivers dropping every ~{drop} ms, {rooms} room(s), {secs} s"
        ),
    );
    shape.duration_ms = secs * 1000;
    shape.drop_mean_ms = drop;
    Ok(shape)
}
