//! A small stderr logger: UTC timestamp, level, target, message.

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::io::Write;

struct Stderr {
    level: LevelFilter,
}

impl Log for Stderr {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= self.level
    }

    fn log(&self, r: &Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
        let level = match r.level() {
            Level::Error => "ERROR",
            Level::Warn => "WARN ",
            Level::Info => "INFO ",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        };
        let _ = writeln!(
            std::io::stderr().lock(),
            "{now} {level} {}: {}",
            r.target(),
            r.args()
        );
    }

    fn flush(&self) {}
}

/// Installs the logger; `RUST_LOG`, when it is a level name, overrides `level`. Idempotent.
pub fn init(level: &str) {
    let env = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<LevelFilter>().ok());
    let level = env.unwrap_or_else(|| level.parse().unwrap_or(LevelFilter::Info));
    if log::set_logger(Box::leak(Box::new(Stderr { level }))).is_ok() {
        log::set_max_level(level);
    }
}
