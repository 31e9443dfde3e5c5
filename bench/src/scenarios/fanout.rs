//! `fanout`: one room with many receivers and a few senders at a high rate: every
//! message is delivered to every receiver, so deliveries/s = rate x receivers.

use super::{Shape, interval_for, many, positive, senders};
use crate::args::Args;
use crate::plan::Role;

/// Help text.
pub const HELP: &str = "\
fanout: one room, many receivers, a few fast senders
  --receivers R    (2000; quick 200)   --senders S    (10; quick 2)
  --rate MSGS/S    total send rate (200; quick 50)
  --duration SEC   (10; quick 3)";

/// The shape.
pub fn shape(a: &Args) -> Result<Shape, String> {
    let r = positive("receivers", a.sized("receivers", 2000, 200)?)?;
    let s = positive("senders", a.sized("senders", 10, 2)?)?;
    let rate: f64 = a.sized("rate", 200.0, 50.0)?;
    let secs = positive("duration", a.sized("duration", 10, 3)?)?;
    let mut conns = senders(s, 1, interval_for(rate, s)?, 0, 0);
    conns.extend(many(r, 1, Role::Receiver));
    let mut shape = Shape::new(
        1,
        conns,
        format!(
            "{r} receivers, {s} senders at {rate} msgs/s total for {secs} s: {:.0} deliveries/s offered",
            rate * r as f64
        ),
    );
    shape.duration_ms = secs * 1000;
    shape.users = shape.conns.len().min(500);
    Ok(shape)
}
