//! Replays the fuzz corpora (fuzz/corpus/<target>/) and the saved crash inputs
//! (fuzz/artifacts-regressions/<target>/, when present) through the same library
//! functions as the cargo-fuzz targets in fuzz/, on stable and without libFuzzer.
//! A panic in any of them fails the test and names the file.

use chatd::fuzzing::{config_toml, http_parse, ws_event};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

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
