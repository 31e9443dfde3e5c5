//! chatd: a real-time chat server whose only infrastructure is PostgreSQL.
//!
//! The modules are layers, bottom to top (docs/ARCHITECTURE.md; tests/it/architecture.rs
//! keeps the order): `base`, `pg`, the domain (`auth`, `chat`, `hooks`), the protocol adapters
//! (`http`, `ws`), `net`, and `node`, whose `run(Config)` starts a node and returns a
//! handle; tests start nodes in-process on port 0.

pub mod auth;
pub mod base;
pub mod chat;
#[doc(hidden)]
pub mod fuzzing;
pub mod hooks;
pub mod http;
pub mod net;
pub mod node;
pub mod pg;
pub mod ws;

pub use base::{config, logger};
pub use node::{ServerHandle, StartError, migrate, run, run_until};
