//! Starting a node, as a careless operator and a hostile client found it: revocations
//! known before the first token is accepted, one process per port and per node id,
//! secrets never printed, configuration errors fatal at once and SIGTERM honoured while
//! waiting for a database. Each test fails on the code before its fix.

use crate::support::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A token logged out before a restart is refused by the restarted node from its first
/// request. (Before: accepted for ~60 ms, until the listener loaded the revocations.)
#[test]
fn revoked_tokens_are_refused_from_the_first_request_after_a_restart() {
    let db = TestDb::new();
    let node = start(&db);
    let u = register(&node.addr(), "revoked");
    let (s, _) = request(&node.addr(), "POST", "/auth/logout", Some(&u.token), None);
    assert_eq!(s, 201);
    drop(node);
    for _ in 0..3 {
        // No wait for readiness: the very first requests.
        let handle = chatd::run(config(&db.url)).expect("node starts");
        let addr = handle.url();
        assert_eq!(request(&addr, "GET", "/rooms", Some(&u.token), None).0, 401);
        let upgrade = tungstenite::connect(format!("ws://{addr}/ws?token={}", u.token));
        match upgrade {
            Err(tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
            other => panic!("a revoked token upgraded: {:?}", other.map(|_| ())),
        }
        drop(handle);
    }
}

/// A second node on a served port, or under a running node's id, is refused, and two
/// nodes never share a derived id. (Before: both started, split the traffic, and one
/// cleared the other's presence rows.)
#[test]
fn one_process_per_port_and_per_node_id() {
    let db = TestDb::new();
    let port = free_port();
    let mut first = config(&db.url);
    first.server.port = port;
    first.node_id = "only-one".into();
    let a = chatd::run(first.clone()).expect("first node starts");
    let mut same_port = config(&db.url);
    same_port.server.port = port;
    let err = chatd::run(same_port)
        .err()
        .expect("a second node on the port");
    assert!(err.to_string().contains("already served"), "{err}");
    let mut same_id = config(&db.url);
    same_id.node_id = "only-one".into();
    let err = chatd::run(same_id)
        .err()
        .expect("a second node under the id");
    assert!(err.to_string().contains("in use"), "{err}");
    // Asked for explicitly, a shared port is allowed (hand-over between processes).
    let mut handover = config(&db.url);
    handover.server.port = port;
    handover.server.shared_port = true;
    let b = chatd::run(handover).expect("explicit shared port");
    let c = chatd::run(config(&db.url)).expect("a third node");
    assert_ne!(b.node_id, c.node_id);
    assert!(b.node_id != a.node_id && c.node_id != a.node_id);
    drop((a, b, c));
    // Once the first stopped, its id is free again.
    let again = chatd::run(first).expect("the id is free after a clean stop");
    drop(again);
}

fn chatd(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(chatd_bin())
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .output()
        .expect("chatd runs")
}

/// `check-config` and start-up errors never print a database password, however it is
/// given. (Before: `?password=` was shown, and the tail of a password holding `@`.)
#[test]
fn database_passwords_are_never_printed() {
    for (url, secret) in [
        ("postgres://me@127.0.0.1:1/x?password=hunter2", "hunter2"),
        ("postgres://me:p@ssw0rd@127.0.0.1:1/x", "ssw0rd"),
        ("postgres://me:s3cr3t@127.0.0.1:1/x", "s3cr3t"),
    ] {
        let out = chatd(&["check-config"], &[("DATABASE_URL", url)]);
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        assert!(
            text.contains("127.0.0.1:1/x") && !text.contains(secret),
            "{text}"
        );
    }
    let out = chatd(
        &[],
        &[("DATABASE_URL", "postgres://me:p@ssw0rd@127.0.0.1:5432:99/x")],
    );
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(!text.contains("ssw0rd"), "{text}");
}

/// A configuration error is fatal at once; a database that refuses connections is
/// waited for, but SIGTERM ends the wait at once; a wrong user is named as such.
/// (Before: 30 s of retries for any error, with SIGTERM ignored meanwhile.)
#[test]
fn startup_fails_fast_and_honours_sigterm() {
    let t = Instant::now();
    let out = chatd(
        &[],
        &[("DATABASE_URL", "postgres://x@127.0.0.1:notaport/db")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("database.url"));
    assert!(t.elapsed() < Duration::from_secs(3));

    let port = free_port();
    let mut child = Command::new(chatd_bin())
        .env(
            "DATABASE_URL",
            format!("postgres://postgres@127.0.0.1:{port}/db"),
        )
        .env("PORT", free_port().to_string())
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "gave up on a refused port at once"
    );
    let t = Instant::now();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "SIGTERM ignored while waiting for the database"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());

    let base = pg_base();
    let wrong_user = base.replacen("postgres://postgres@", "postgres://nobody_here:pw@", 1);
    let out = chatd(&[], &[("DATABASE_URL", &format!("{wrong_user}/x"))]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(text.contains("wrong user or password"), "{text}");
    assert!(!text.contains(":pw@"), "{text}");
}

/// Production mode refuses the settings an operator can get dangerously wrong, at their
/// bounds: an access token living an hour is accepted and one second more refused;
/// 256 MiB of argon2 memory accepted and 1 KiB more refused.
/// Fails if a bound is off by one: shown by refusing `access_ttl_secs >= 3600` in the
/// production checks of `base::config` ("access_ttl_secs = 3600: ... allows at most
/// 3600").
#[test]
fn production_mode_refuses_dangerous_settings() {
    let dir = std::env::temp_dir().join(format!("chatd-prod-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = "3f9c1e0a7b5d2c4e8f6a1b3d5c7e9f0a2b4c6d8e0f1a3b5c";
    for (extra, key) in [
        ("[websocket]\necho_endpoint = true\n", "echo_endpoint"),
        (
            "[limits]\nlogin_per_ip_per_min = 0\n",
            "login_per_ip_per_min",
        ),
        // Just over the bounds: an hour and a second, 256 MiB and 1 KiB.
        ("[auth]\naccess_ttl_secs = 3601\n", "access_ttl_secs"),
        ("[auth]\nargon2_memory_kib = 262145\n", "argon2_memory_kib"),
    ] {
        let path = dir.join("c.toml");
        std::fs::write(&path, format!("mode = \"production\"\n{extra}")).unwrap();
        let out = chatd(
            &["--config", path.to_str().unwrap(), "check-config"],
            &[
                ("JWT_ACCESS_SECRET", good),
                (
                    "JWT_REFRESH_SECRET",
                    &good.chars().rev().collect::<String>(),
                ),
            ],
        );
        assert_eq!(out.status.code(), Some(2), "{extra}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(key),
            "{extra}"
        );
    }
    // At the bounds: an hour, 256 MiB (with the OWASP floor of passes) are accepted.
    for extra in [
        "[auth]\naccess_ttl_secs = 3600\n",
        "[auth]\nargon2_memory_kib = 262144\nargon2_iterations = 2\n",
    ] {
        let path = dir.join("c.toml");
        std::fs::write(&path, format!("mode = \"production\"\n{extra}")).unwrap();
        let out = chatd(
            &["--config", path.to_str().unwrap(), "check-config"],
            &[
                ("JWT_ACCESS_SECRET", good),
                (
                    "JWT_REFRESH_SECRET",
                    &good.chars().rev().collect::<String>(),
                ),
            ],
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{extra}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let path = dir.join("c.toml");
    std::fs::write(&path, "mode = \"production\"\n").unwrap();
    let weak = "a".repeat(32);
    let out = chatd(
        &["--config", path.to_str().unwrap(), "check-config"],
        &[("JWT_ACCESS_SECRET", &weak), ("JWT_REFRESH_SECRET", good)],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("access_secret"));
    let _ = std::fs::remove_dir_all(&dir);
}
