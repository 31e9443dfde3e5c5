//! The event loops: accepting, connections and their protocol state, outbound queues,
//! readiness, and the messages other threads send a loop. Drives HTTP through
//! http::routes and WebSockets through ws::Hub; never the other way round.

pub mod buffer;
pub mod conn;
pub mod event_loop;
pub mod handle;
mod sockets;
