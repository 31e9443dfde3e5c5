//! Suites that drive the release binary from the outside: the Autobahn WebSocket
//! conformance cases against /echo, and every bench-harness scenario in --quick mode.

mod support;

use std::process::Command;

fn run_script(script: &str) -> std::process::Output {
    let root = env!("CARGO_MANIFEST_DIR");
    Command::new("bash")
        .arg(format!("{root}/{script}"))
        .env("CHATD_BIN", support::chatd_bin())
        .env("TEST_PG_URL", support::pg_base())
        .output()
        .expect("script runs")
}

#[test]
fn autobahn_cases_1_to_7_and_10_pass() {
    let out = run_script("deploy/autobahn.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "Autobahn failed:\n{text}");
    assert!(text.contains("autobahn: 247 cases"), "{text}");
    assert!(!text.contains("FAILED"), "{text}");
}

#[test]
fn every_bench_scenario_runs_quick_and_clean() {
    let root = env!("CARGO_MANIFEST_DIR");
    let bench =
        std::env::var("CHAT_BENCH").unwrap_or_else(|_| format!("{root}/target/release/chat-bench"));
    assert!(
        std::path::Path::new(&bench).exists(),
        "build the harness first: cargo build --release -p chat-bench"
    );
    let out = Command::new("bash")
        .arg(format!("{root}/bench/run-quick.sh"))
        .env("CHATD_BIN", support::chatd_bin())
        .env("CHAT_BENCH", &bench)
        .env("TEST_PG_URL", support::pg_base())
        .output()
        .expect("script runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "bench --quick failed:\n{text}");
}
