//! Acceptance checks against the chatd binary (the release build in CI), started with
//! DATABASE_URL, PORT, JWT_ACCESS_SECRET and JWT_REFRESH_SECRET like in production.

use crate::support::*;
use serde_json::json;
use std::time::Duration;

#[test]
fn every_rest_route_and_the_websocket_contract() {
    let db = TestDb::new();
    let mut p1 = Process::start(&db, "acc-1");
    let mut p2 = Process::start(&db, "acc-2");
    let (a, b) = (p1.addr.clone(), p2.addr.clone());

    // Auth.
    let reg =
        json!({"username": "accept", "email": "accept@example.com", "password": "password123"});
    let (s, r) = request(&a, "POST", "/auth/register", None, Some(&reg));
    assert_eq!(s, 201, "{r}");
    assert_eq!(
        request(&a, "POST", "/auth/register", None, Some(&reg)).0,
        409
    );
    let (s, login) = request(
        &b,
        "POST",
        "/auth/login",
        None,
        Some(&json!({"email": "accept@example.com", "password": "password123"})),
    );
    assert_eq!(s, 201, "{login}");
    let token = login["tokens"]["accessToken"].as_str().unwrap().to_string();
    let (s, refreshed) = request(
        &a,
        "POST",
        "/auth/refresh",
        None,
        Some(&json!({"refreshToken": login["tokens"]["refreshToken"]})),
    );
    assert_eq!(s, 201);
    let token2 = refreshed["tokens"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let other = register(&a, "peer");

    // Rooms on one node, read on the other: tokens are valid across nodes.
    let (s, room) = request(
        &a,
        "POST",
        "/rooms",
        Some(&token),
        Some(&json!({"name": "acceptance"})),
    );
    assert_eq!(s, 201);
    let id = room["id"].as_str().unwrap().to_string();
    assert_eq!(
        request(&b, "GET", "/rooms", Some(&token2), None).1[0]["id"],
        id.as_str()
    );
    assert_eq!(
        request(&b, "GET", &format!("/rooms/{id}"), Some(&token), None).0,
        200
    );
    assert_eq!(
        request(
            &b,
            "POST",
            &format!("/rooms/{id}/join"),
            Some(&other.token),
            None
        )
        .0,
        201
    );
    assert_eq!(
        request(
            &b,
            "GET",
            &format!("/rooms/{id}/members"),
            Some(&other.token),
            None
        )
        .1
        .as_array()
        .unwrap()
        .len(),
        2
    );

    // WebSocket on node 2, messages posted through node 1 (REST) and node 2 (WS).
    let mut w = Ws::connect(&b, &other.token);
    w.join(&id, None);
    // The join above is the room's first entry (a system entry).
    let head = room_head(&a, &token, &id);
    assert_eq!(head, 1);
    for i in head + 1..=head + 5 {
        let (s, m) = request(
            &a,
            "POST",
            &format!("/rooms/{id}/messages"),
            Some(&token),
            Some(&json!({"content": format!("r{i}")})),
        );
        assert_eq!((s, m["seq"].as_i64()), (201, Some(i)));
    }
    assert_exact(
        &w.collect_seqs(5, Duration::from_secs(10)),
        head + 1,
        head + 5,
    );
    w.send_text("{bad json");
    assert_eq!(w.expect("error")["code"], "invalid_json");
    w.send(
        "send_message",
        json!({"room_id": id, "content": "ws", "client_msg_id": "a-1"}),
    );
    assert_eq!(w.expect("message_ack")["seq"], head + 6);
    // History hand-over on node 1.
    let mut late = Ws::connect(&a, &token);
    let history = late.join(&id, Some(head + 2)).unwrap();
    let seqs: Vec<i64> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, vec![head + 3, head + 4, head + 5, head + 6]);
    let (s, page) = request(
        &b,
        "GET",
        &format!("/rooms/{id}/messages?limit=2"),
        Some(&token),
        None,
    );
    assert_eq!((s, page["next_cursor"].as_i64()), (200, Some(head + 5)));
    assert_eq!(
        request(
            &a,
            "POST",
            &format!("/rooms/{id}/leave"),
            Some(&other.token),
            None
        )
        .0,
        201
    );
    assert_eq!(
        request(&a, "POST", "/auth/logout", Some(&token), None).0,
        201
    );
    // The other node learns of the revocation through a notification, within a second.
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while request(&b, "GET", "/rooms", Some(&token2), None).0 != 401 {
        assert!(
            std::time::Instant::now() < deadline,
            "revocation did not reach node 2"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for path in ["/health", "/ready", "/openapi.json"] {
        assert_eq!(request(&b, "GET", path, None, None).0, 200, "{path}");
    }
    // Metrics only on `[metrics] listen`, which the load-test configuration leaves off.
    assert_eq!(request(&b, "GET", "/metrics", None, None).0, 404);

    // SIGTERM: graceful, exit 0, sockets told 1001.
    assert_eq!(p2.terminate(), Some(0));
    let closed = loop {
        let v = w
            .next_within(Duration::from_secs(5))
            .expect("a close frame");
        if v["event"].as_str().is_some_and(|e| e.starts_with("__")) {
            break v;
        }
    };
    assert_eq!(closed["data"]["code"], 1001, "{closed}");
    assert_eq!(p1.terminate(), Some(0));
}

#[test]
fn command_line_and_config_file() {
    let dir = std::env::temp_dir().join(format!("chatd-cfg-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(chatd_bin())
            .args(args)
            .env_remove("DATABASE_URL")
            .env_remove("PORT")
            .output()
            .unwrap()
    };

    let help = run(&["--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for word in [
        "serve",
        "migrate",
        "check-config",
        "--config",
        "DATABASE_URL",
        "JWT_ACCESS_SECRET",
    ] {
        assert!(text.contains(word), "help lacks {word}");
    }

    let good = dir.join("good.toml");
    std::fs::write(&good, "[server]\nport = 4321\n[auth]\naccess_secret = \"s3cr3t-value\"\n[database]\nurl = \"postgres://u:hunter2@db/chat\"\n").unwrap();
    let out = run(&["--config", good.to_str().unwrap(), "check-config"]);
    assert!(out.status.success());
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("port = 4321"));
    assert!(
        !shown.contains("s3cr3t-value") && !shown.contains("hunter2"),
        "{shown}"
    );

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[websocket]\nping_interval = 5\n").unwrap();
    let out = run(&["--config", bad.to_str().unwrap(), "check-config"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ping_interval"));

    let range = dir.join("range.toml");
    std::fs::write(&range, "[database]\nwriters = 0\n").unwrap();
    let out = run(&["--config", range.to_str().unwrap(), "check-config"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("database.writers"));

    let prod = dir.join("prod.toml");
    std::fs::write(&prod, "mode = \"production\"\n").unwrap();
    let out = run(&["--config", prod.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("secret"));
    assert_eq!(run(&["frobnicate"]).status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}
