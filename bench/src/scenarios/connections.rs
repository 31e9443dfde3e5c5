//! `connections`: N idle authenticated sockets, each joined to a room, held open for
//! a while. Measures connect and join latency, the connect+join rate and, with
//! `--server-pid`, the server's resident memory per connection, measured from a
//! baseline taken after provisioning once the server's RSS has stopped moving.

use super::{Shape, many, positive};
use crate::args::Args;
use crate::plan::Role;

/// Help text.
pub const HELP: &str = "\
connections: N idle sockets joined to rooms, held open
  --connections N  (5000; quick 300)   --rooms R (100; quick 10)
  --hold SEC       (10; quick 2)
  Over ~20,000 sockets use --procs (20,000 descriptors per process) and the
  sockets are spread over 127.0.0.x source addresses (see --source-addrs).";

/// The shape.
pub fn shape(a: &Args) -> Result<Shape, String> {
    let n = positive("connections", a.sized("connections", 5000, 300)?)?;
    let rooms = positive("rooms", a.sized("rooms", 100, 10)?)?;
    let hold = a.sized("hold", 10, 2)?;
    let mut shape = Shape::new(
        rooms as usize,
        many(n, rooms, Role::Receiver),
        format!("{n} idle sockets over {rooms} rooms, held {hold} s"),
    );
    shape.duration_ms = hold.max(1) * 1000;
    shape.users = (n as usize).min(500);
    shape.settle_rss = true;
    Ok(shape)
}
