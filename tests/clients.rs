//! The client library's own tests (Node's test runner, tests/js/) and the web app's
//! real-browser test (headless Chromium through WebDriver, tests/browser/), run against
//! the release binary like the other suites that drive chatd from the outside.

mod support;

use std::process::Command;

fn run_script(script: &str) {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("bash")
        .arg(format!("{root}/{script}"))
        .env("CHATD_BIN", support::chatd_bin())
        .env("TEST_PG_URL", support::pg_base())
        .output()
        .expect("script runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{script} failed:\n{text}");
}

#[test]
fn client_library() {
    run_script("tests/js/run.sh");
}

#[test]
fn web_app_in_a_browser() {
    run_script("tests/browser/run.sh");
}
