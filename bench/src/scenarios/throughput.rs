//! `throughput`: many senders over many rooms for a fixed time, either open loop at
//! a total `--rate` or closed loop (each sender keeps `--window` unacked messages in
//! flight) to find saturation.

use super::{Shape, interval_for, many, positive, senders};
use crate::args::Args;
use crate::plan::Role;

/// Help text.
pub const HELP: &str = "\
throughput: senders over many rooms for a while, open or closed loop
  --rooms N        (100; quick 10)     --senders S    (200; quick 20)
  --receivers R    (200; quick 20)     --duration SEC (10; quick 3)
  --rate MSGS/S    total open-loop rate (default: closed loop)
  --window W       unacked messages per sender in closed loop (8; quick 4)";

/// The shape.
pub fn shape(a: &Args) -> Result<Shape, String> {
    let rooms = positive("rooms", a.sized("rooms", 100, 10)?)?;
    let s = positive("senders", a.sized("senders", 200, 20)?)?;
    let r = a.sized("receivers", 200, 20)?;
    let secs = positive("duration", a.sized("duration", 10, 3)?)?;
    let rate: f64 = a.num("rate", 0.0)?;
    let window = a.sized("window", 8u32, 4)?.max(1);
    let (mut conns, how) = if rate > 0.0 {
        let iv = interval_for(rate, s)?;
        (
            senders(s, rooms, iv, 0, 0),
            format!("open loop {rate} msgs/s"),
        )
    } else {
        (
            senders(s, rooms, 0, 0, window),
            format!("closed loop, window {window}"),
        )
    };
    conns.extend(many(r, rooms, Role::Receiver));
    let mut shape = Shape::new(
        rooms as usize,
        conns,
        format!("{s} senders, {r} receivers over {rooms} rooms, {how}, {secs} s"),
    );
    shape.duration_ms = secs * 1000;
    shape.users = shape.conns.len().min(400);
    Ok(shape)
}
