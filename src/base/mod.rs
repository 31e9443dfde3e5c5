//! The bottom layer: configuration, error kinds, metrics, limits, logging, the model
//! every other layer shares, the one rule of who may do what in a room, and the session
//! interface between the event loop and the protocols. It imports no other part of the
//! crate.

pub mod access;
pub mod budget;
pub mod config;
pub mod error;
pub mod limits;
pub mod logger;
pub mod metrics;
pub mod model;
pub mod names;
pub mod session;
pub mod shared;
pub mod text;
