//! The bottom layer: configuration, error kinds, metrics, limits, logging and the model
//! every other layer shares. It imports no other part of the crate.

pub mod config;
pub mod error;
pub mod limits;
pub mod logger;
pub mod metrics;
pub mod model;
