//! The event loops: connections, buffers, readiness.

pub mod buffer;
pub mod conn;
pub mod event_loop;
