//! `soak`: a steady mixed load for a long time: senders in every room at a total
//! rate, receivers checked exactly, receivers that drop and rejoin with
//! `last_seen_seq`, connect/join/leave/close churn, typing. Figures per interval
//! (p99 latency, server RSS and descriptors); the run fails on any stream violation
//! and when the server's RSS or descriptors grow more than `--max-growth-pct` after
//! warm-up.

use super::{Shape, many, positive, senders};
use crate::args::Args;
use crate::plan::Role;

/// Help text.
pub const HELP: &str = "\
soak: steady mixed load (send, receive, rejoin, churn, typing), figures per interval
  --sockets N        steady sockets (2000; quick 150)  --rooms R (200; quick 15)
  --rate MSGS/S      total, one open-loop sender per room (5000; quick 150)
  --duration SEC     (600; quick 12)     --interval-secs S  per-interval figures (60; quick 2)
  --warmup-secs S    growth is measured from the first interval after it (2 intervals)
  --max-growth-pct G server RSS and descriptor growth allowed after warm-up (10)
  --churn-rate C/S   connect -> join -> leave -> close cycles (20; quick 5)
  --reconnect-pct P  receivers that drop and rejoin with last_seen_seq (10)
  --drop-mean-ms D   mean time between a rejoiner's drops (30000; quick 3000)
  --offline-ms O     longest stay offline after a drop (2000; quick 500)
  --typing-ms I      one typer per room alternates start/stop every I ms (2000; quick 500)
Sockets: R senders, R typers, the rest receivers (P % of them rejoiners), plus
max(8, C) churn slots. Pass: the usual stream, ack and typing checks, and with
--server-pid the server's RSS and open descriptors (mean of an interval) at the end
no more than G % above the first interval after warm-up.";

/// The shape.
pub fn shape(a: &Args) -> Result<Shape, String> {
    let n = positive("sockets", a.sized("sockets", 2000, 150)?)?;
    let rooms = positive("rooms", a.sized("rooms", 200, 15)?)?;
    let rate: f64 = a.sized("rate", 5000.0, 150.0)?;
    if rate <= 0.0 {
        return Err("--rate must be positive".into());
    }
    let secs = positive("duration", a.sized("duration", 600, 12)?)?;
    let interval = positive("interval-secs", a.sized("interval-secs", 60, 2)?)?;
    let warmup = a.num("warmup-secs", 2 * interval)?;
    let growth: f64 = a.num("max-growth-pct", 10.0)?;
    let churn: f64 = a.sized("churn-rate", 20.0, 5.0)?;
    let pct: u64 = a.num("reconnect-pct", 10)?;
    let drop = positive("drop-mean-ms", a.sized("drop-mean-ms", 30_000, 3000)?)?;
    let offline = a.sized("offline-ms", 2000, 500)?;
    let typing = positive("typing-ms", a.sized("typing-ms", 2000, 500)?)?;
    if n < 3 * rooms {
        return Err(format!(
            "--sockets {n}: at least 3 per room (a sender, a typer, a receiver) are needed for {rooms} rooms"
        ));
    }
    if pct > 100 {
        return Err("--reconnect-pct is a percentage".into());
    }
    // One sender per room at rate / rooms each.
    let iv = ((rooms as f64) * 1e6 / rate).max(1.0) as u64;
    let mut conns = senders(rooms, rooms, iv, 0, 0);
    conns.extend(many(rooms, rooms, Role::Typer));
    let rest = n - 2 * rooms;
    let rejoiners = rest * pct / 100;
    conns.extend(many(rest - rejoiners, rooms, Role::Receiver));
    conns.extend(many(rejoiners, rooms, Role::Reconnector));
    let slots = (churn.ceil() as u64).max(8);
    if churn > 0.0 {
        conns.extend(many(slots, rooms, Role::Churner));
    }
    let mut shape = Shape::new(
        rooms as usize,
        conns,
        format!(
            "{n} sockets over {rooms} rooms, {rate} msgs/s, {} rejoiners, {churn} churn cycles/s, typing every {typing} ms, {secs} s in {interval} s intervals",
            rejoiners
        ),
    );
    shape.duration_ms = secs * 1000;
    shape.churn_rate = churn.max(0.0);
    shape.drop_mean_ms = drop;
    shape.offline_ms = offline;
    shape.typing_interval_ms = typing;
    shape.interval_ms = interval * 1000;
    shape.warmup_ms = warmup * 1000;
    shape.max_growth_pct = growth;
    shape.users = (n as usize).min(500);
    Ok(shape)
}
