//! `churn`: sockets connect, join a room, leave it and disconnect at a steady rate,
//! while a few senders keep a stream going to steady receivers in the same rooms
//! (whose streams must stay exact).

use super::{Shape, many, positive, senders};
use crate::args::Args;
use crate::plan::Role;

/// Help text.
pub const HELP: &str = "\
churn: connect -> join -> leave -> disconnect cycles at a steady rate
  --rate CYCLES/S  (50; quick 20)      --duration SEC   (10; quick 3)
  --rooms N        (10; quick 2)       --slots N        concurrent cycles (max(8, rate))
  --receivers R    steady receivers (20; quick 4)
  --senders S      background senders (2; quick 1) every --interval-ms (100)";

/// The shape.
pub fn shape(a: &Args) -> Result<Shape, String> {
    let rate: f64 = a.sized("rate", 50.0, 20.0)?;
    if rate <= 0.0 {
        return Err("--rate must be positive".into());
    }
    let secs = positive("duration", a.sized("duration", 10, 3)?)?;
    let rooms = positive("rooms", a.sized("rooms", 10, 2)?)?;
    let slots = positive("slots", a.num("slots", (rate.ceil() as u64).max(8))?)?;
    let r = a.sized("receivers", 20, 4)?;
    let s = a.sized("senders", 2, 1)?;
    let iv = positive("interval-ms", a.num("interval-ms", 100)?)?;
    let mut conns = senders(s, rooms, iv * 1000, 0, 0);
    conns.extend(many(r, rooms, Role::Receiver));
    conns.extend(many(slots, rooms, Role::Churner));
    let mut shape = Shape::new(
        rooms as usize,
        conns,
        format!(
            "{rate} cycles/s over {slots} slots for {secs} s in {rooms} rooms; {s} senders every {iv} ms, {r} steady receivers"
        ),
    );
    shape.duration_ms = secs * 1000;
    shape.churn_rate = rate;
    shape.users = shape.conns.len().min(200);
    Ok(shape)
}
