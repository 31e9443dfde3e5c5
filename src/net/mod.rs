//! The event loops: accepting (with connection slots), connections, outbound queues,
//! readiness, and the messages other threads send a loop. Knows sockets, buffers and
//! readiness, no protocol: it drives HTTP (http/) and WebSocket (ws/) sessions through
//! the interface of `base/session.rs`; never the other way round.

pub mod buffer;
pub mod conn;
pub mod event_loop;
pub mod handle;
pub mod slots;
mod sockets;
