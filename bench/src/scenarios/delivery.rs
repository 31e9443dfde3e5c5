//! `delivery`: S senders each send M messages every I ms into one room watched by R
//! receivers. Every receiver must get every message once, in order; the figures are
//! the send→receive latency distribution and the delivery rate.

use super::{Shape, many, positive, senders};
use crate::args::Args;
use crate::plan::Role;

/// Help text.
pub const HELP: &str = "\
delivery: S senders x M messages every I ms into one room, R receivers
  --senders S       (40; quick 5)      --messages M  (20; quick 10)
  --interval-ms I   (100)              --receivers R (100; quick 20)
  --rooms N         (1: senders and receivers spread round-robin)
Reference shape: --senders 120 --messages 80 --interval-ms 80 --receivers 300";

/// The shape.
pub fn shape(a: &Args) -> Result<Shape, String> {
    let s = positive("senders", a.sized("senders", 40, 5)?)?;
    let m = positive("messages", a.sized("messages", 20, 10)?)?;
    let i = positive("interval-ms", a.num("interval-ms", 100)?)?;
    let r = a.sized("receivers", 100, 20)?;
    let rooms = positive("rooms", a.num("rooms", 1)?)?;
    let mut conns = senders(s, rooms, i * 1000, m, 0);
    conns.extend(many(r, rooms, Role::Receiver));
    Ok(Shape::new(
        rooms as usize,
        conns,
        format!(
            "{s} senders x {m} msgs every {i} ms, {r} receivers, {rooms} room(s): {} msgs, {} deliveries expected",
            s * m,
            s * m * r / rooms
        ),
    ))
}
