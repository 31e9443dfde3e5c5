//! Replays the fuzz corpora (fuzz/corpus/<target>/) and the saved crash inputs
//! (fuzz/artifacts-regressions/<target>/, when present) through the same library
//! functions as the cargo-fuzz targets in fuzz/, on stable and without libFuzzer.
//! A panic in any of them fails the test and names the file. The HTTP and WebSocket
//! corpora are also sent to a running node, whose counters of caught job panics and of
//! 500 answers must stay at zero.

use crate::support::*;
use chatd::fuzzing::{config_toml, http_parse, ws_event};
use std::io::{Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

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

/// Every input of the `http_parse` corpus is sent raw on a connection of its own (then
/// the write side is closed and the answer, if any, read to the end), as it is and with
/// a valid token added, and every input of the `ws_event` corpus is sent as a text frame
/// on a WebSocket of a registered user (with a ping after every 50 to know they were
/// all handled); then the node has caught no panic in a job and answered no 500, and
/// still serves. (The corpora reach few jobs: most inputs end at parsing or routing.)
/// Fails on a 500 answer: shown by answering malformed requests 500 in
/// `parse_error_response` (589 counted). Fails on a panic caught in a job: shown by a
/// `panic!` in `pg::pool`'s job runner after every job (6 counted while every client
/// was answered).
#[test]
fn corpora_sent_to_a_live_node_reach_no_panic_and_no_500() {
    let db = TestDb::new();
    // Heads cut short by the corpus wait at most a second for the rest.
    let node = start_with(&db, |c| c.http.header_timeout_ms = 1000);
    let a = node.addr();

    // A user with a room, so that inputs which name a route get past authentication:
    // each input is sent as it is, and again with the user's token in a header after
    // its first line.
    let u = register(&a, "fuzz");
    let _room = create_room(&a, &u.token);
    let http = inputs("http_parse");
    assert!(!http.is_empty());
    let chunks: Vec<Vec<PathBuf>> = http
        .chunks(http.len().div_ceil(4))
        .map(<[PathBuf]>::to_vec)
        .collect();
    let senders: Vec<_> = chunks
        .into_iter()
        .map(|files| {
            let (a, token) = (a.clone(), u.token.clone());
            std::thread::spawn(move || {
                let mut answered = 0;
                for path in files {
                    let data = std::fs::read(&path).unwrap();
                    let mut with_token = data.clone();
                    if let Some(eol) = data.iter().position(|b| *b == b'\n') {
                        let header = format!("Authorization: Bearer {token}\r\n");
                        with_token.splice(eol + 1..eol + 1, header.into_bytes());
                    }
                    for bytes in [&data, &with_token] {
                        let mut s = std::net::TcpStream::connect(&a).unwrap();
                        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                        // The node may answer and close before reading it all: fine.
                        let _ = s.write_all(bytes);
                        let _ = s.shutdown(std::net::Shutdown::Write);
                        let mut out = Vec::new();
                        let _ = s.read_to_end(&mut out);
                        if out.starts_with(b"HTTP/1.1 ") {
                            answered += 1;
                        }
                    }
                }
                answered
            })
        })
        .collect();
    let answered: usize = senders.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(
        answered > http.len() / 2,
        "only {answered} of {} answered",
        http.len()
    );

    let ws = inputs("ws_event");
    let mut w = Ws::connect(&a, &u.token);
    let mut reconnects = 0;
    for (i, path) in ws.iter().enumerate() {
        let text = String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned();
        if w.ws.send(tungstenite::Message::text(text)).is_err() {
            // Closed by the node (a frame it refuses): note it and go on.
            reconnects += 1;
            w = Ws::connect(&a, &u.token);
            continue;
        }
        if i % 50 == 49 || i == ws.len() - 1 {
            w.send("ping", serde_json::json!({"n": i}));
            loop {
                let v = w
                    .next_within(Duration::from_secs(10))
                    .unwrap_or_else(|| panic!("no answer after input {}", path.display()));
                if v["event"] == "pong" && v["data"]["n"] == i {
                    break;
                }
                if v["event"].as_str().is_some_and(|e| e.starts_with("__")) {
                    reconnects += 1;
                    w = Ws::connect(&a, &u.token);
                    break;
                }
            }
        }
    }
    assert!(reconnects < 10, "{reconnects} sockets closed by the corpus");
    eprintln!(
        "http: {answered} of {} answered; ws: {} frames, {reconnects} reconnects",
        2 * http.len(),
        ws.len()
    );
    // Writes and checks answered after the last pong have had their time.
    std::thread::sleep(Duration::from_millis(500));
    let m = &node.handle.metrics;
    assert_eq!(
        (m.job_panics.load(Relaxed), m.http_500.load(Relaxed)),
        (0, 0),
        "(job panics, HTTP 500 answers)"
    );
    assert_eq!(request(&a, "GET", "/health", None, None).0, 200);
}
