//! The client library's own tests (Node's test runner, tests/js/) and the web app's
//! real-browser test (headless Chromium through WebDriver, tests/browser/), run against
//! the release binary like the other suites that drive chatd from the outside.

use crate::support;

use std::process::Command;

fn run_script(script: &str) -> String {
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
    text
}

/// The `# name N` figure of a TAP summary (`None` when the line is missing).
fn tap_count(tap: &str, name: &str) -> Option<u64> {
    tap.lines()
        .filter_map(|l| l.trim().strip_prefix('#'))
        .filter_map(|l| l.trim().strip_prefix(name))
        .find_map(|n| n.trim().parse().ok())
}

/// How many top-level `test(` calls the files of tests/js/ hold: each must run.
fn js_tests_written() -> u64 {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".test.mjs"))
        .map(|e| {
            std::fs::read_to_string(e.path())
                .unwrap()
                .lines()
                .filter(|l| l.starts_with("test("))
                .count() as u64
        })
        .sum()
}

/// Node's test runner exits 0 when it finds no test file at all (`# tests 0`): the TAP
/// summary must count every test written, all passed. (Fails if the runner finds
/// nothing: shown by pointing tests/js/run.sh at `tests/js/none/`: "node ran 0 of 13
/// tests".)
#[test]
fn client_library() {
    let tap = run_script("tests/js/run.sh");
    let written = js_tests_written();
    assert!(written >= 13, "only {written} tests found in tests/js");
    let (tests, pass, fail) = (
        tap_count(&tap, "tests"),
        tap_count(&tap, "pass"),
        tap_count(&tap, "fail"),
    );
    assert_eq!(
        (tests, pass, fail),
        (Some(written), Some(written), Some(0)),
        "node ran {} of {written} tests (pass {pass:?}, fail {fail:?}):\n{tap}",
        tests.unwrap_or(0)
    );
}

#[test]
fn web_app_in_a_browser() {
    // Its frame-time checks measure the browser, which the rest of the suite slows.
    let _alone = support::alone();
    run_script("tests/browser/run.sh");
}
