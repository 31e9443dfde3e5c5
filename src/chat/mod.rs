//! Chat domain: rooms, messages, presence, and the per-loop fan-out registry.

pub mod fanout;
pub mod messages;
pub mod presence;
pub mod rooms;
