//! Replays the fuzz corpora (fuzz/corpus/<target>/) and the saved crash inputs
//! (fuzz/artifacts-regressions/<target>/, when present) through the same library
//! functions as the cargo-fuzz targets in fuzz/, on stable and without libFuzzer.
//! A panic in any of them fails the test and names the file.

use chatd::config::Config;
use chatd::http::parse::{Limits, parse_head, percent_decode, query_param};
use chatd::ws::events::{ClientEvent, decode, encode, error};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// `chat.toml` defaults.
const DEFAULT: Limits = Limits {
    max_header_bytes: 8192,
    max_headers: 64,
    max_body_bytes: 1 << 20,
};

/// The lower bounds `Config::validate` allows.
const TIGHT: Limits = Limits {
    max_header_bytes: 256,
    max_headers: 4,
    max_body_bytes: 1024,
};

/// Every input file of `target`: its corpus and its saved regressions.
fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files = Vec::new();
    for dir in [
        fuzz.join("corpus").join(target),
        fuzz.join("artifacts-regressions").join(target),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("read_dir entry").path();
            if path.is_file() {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Runs `f` on every input of `target`, collecting the files that panic.
fn replay(target: &str, f: fn(&[u8])) {
    let files = inputs(target);
    assert!(
        !files.is_empty(),
        "no inputs found for {target} under fuzz/corpus/{target}"
    );
    let mut failed = Vec::new();
    for path in &files {
        let data = std::fs::read(path).expect("read fuzz input");
        if catch_unwind(AssertUnwindSafe(|| f(&data))).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: {} of {} inputs panicked:\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
}

fn http_parse(data: &[u8]) {
    for limits in [&DEFAULT, &TIGHT] {
        if let Ok(Some(head)) = parse_head(data, limits) {
            assert!(head.head_len <= data.len());
            assert!(head.head_len <= limits.max_header_bytes);
            assert!(head.body_len <= limits.max_body_bytes);
            assert!(head.path.starts_with('/'));
            assert!(head.minor <= 1);
            for name in ["token", "cursor", "limit", ""] {
                let _ = query_param(&head.query, name);
            }
            let _ = percent_decode(&head.query);
        }
    }
    let text = String::from_utf8_lossy(data);
    let _ = percent_decode(&text);
    let _ = query_param(&text, "token");
}

fn ws_event(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match decode(&text) {
        Ok(ClientEvent::SendMessage {
            content,
            client_msg_id,
            ..
        }) => {
            assert!(!content.is_empty());
            assert!(client_msg_id.is_none_or(|id| !id.is_empty() && id.chars().count() <= 64));
        }
        Ok(ClientEvent::JoinRoom { last_seen_seq, .. }) => {
            assert!(last_seen_seq.is_none_or(|n| n >= 0));
        }
        Ok(ClientEvent::Ping(data)) => {
            assert!(!encode("pong", &data).is_empty());
        }
        Ok(_) => {}
        Err(e) => {
            let _ = e.code();
            let _ = e.status();
            assert!(!error(&e).is_empty());
        }
    }
}

fn config_toml(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(cfg) = Config::from_toml(&text, "fuzz") {
        let _ = cfg.validate();
        let shown = cfg.masked_toml();
        assert!(
            Config::from_toml(&shown, "masked").is_ok(),
            "masked_toml output does not parse back:\n{shown}"
        );
    }
}

#[test]
fn http_parse_corpus() {
    replay("http_parse", http_parse);
}

#[test]
fn ws_event_corpus() {
    replay("ws_event", ws_event);
}

#[test]
fn config_toml_corpus() {
    replay("config_toml", config_toml);
}
