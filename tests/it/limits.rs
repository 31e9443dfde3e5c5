//! Rate limits: login attempts per address and per account, connections per address,
//! events per socket. Each answer is explicit (429 + Retry-After, `rate_limited`).

use crate::support::*;
use serde_json::json;

#[test]
fn login_attempts_are_limited_per_account_and_per_address() {
    let db = TestDb::new();
    let node = start_with(&db, |c| {
        c.limits.login_per_account_ip_per_min = 3;
        c.limits.login_per_ip_per_min = 6;
    });
    let a = node.addr();
    let u = register(&a, "lim");
    let email = format!("{}@example.com", u.username);
    for _ in 0..3 {
        let (s, _) = request(
            &a,
            "POST",
            "/auth/login",
            None,
            Some(&json!({"email": email, "password": "wrong-password"})),
        );
        assert_eq!(s, 401);
    }
    // The fourth attempt on this account is refused before any password check, even
    // with the right password.
    let r = raw_request(
        &a,
        "POST",
        "/auth/login",
        None,
        Some(&json!({"email": email, "password": "password123"})),
    );
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (429, Some("rate_limited"))
    );
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    // Other accounts still work until the address limit (6 per minute) is reached.
    for i in 0..2 {
        let (s, _) = request(
            &a,
            "POST",
            "/auth/login",
            None,
            Some(&json!({"email": format!("other{i}@example.com"), "password": "x"})),
        );
        assert_eq!(s, 401);
    }
    let r = raw_request(
        &a,
        "POST",
        "/auth/login",
        None,
        Some(&json!({"email": "third@example.com", "password": "x"})),
    );
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (429, Some("rate_limited"))
    );
    assert!(r.header("retry-after").is_some(), "{:?}", r.headers);
}

/// A login with `X-Forwarded-For: <xff>` on a fresh connection; returns the status.
fn login_via_proxy(addr: &str, xff: &str, email: &str) -> u16 {
    let body = json!({"email": email, "password": "x"}).to_string();
    let mut c = Http::connect(addr);
    c.send_raw(
        format!(
            "POST /auth/login HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: {xff}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    c.read().expect("a response").status
}

#[test]
fn behind_a_trusted_proxy_the_address_it_appended_is_limited() {
    let db = TestDb::new();
    let node = start_with(&db, |c| {
        c.limits.trust_forwarded_for = true;
        c.limits.login_per_ip_per_min = 2;
        c.limits.login_per_account_per_min = 0;
        c.limits.login_per_account_ip_per_min = 0;
    });
    let a = node.addr();
    // A client cannot escape its limit by sending addresses of its own first: the proxy
    // appends the real one, and that one is counted.
    for i in 0..2 {
        assert_eq!(
            login_via_proxy(&a, &format!("10.9.9.{i}, 203.0.113.7"), "x@example.com"),
            401
        );
    }
    assert_eq!(
        login_via_proxy(&a, "10.9.9.99, 203.0.113.7", "y@example.com"),
        429
    );
    // Another client behind the same proxy has its own count.
    assert_eq!(login_via_proxy(&a, "203.0.113.8", "z@example.com"), 401);
}

#[test]
fn connections_per_address_are_limited() {
    let db = TestDb::new();
    let node = start_with(&db, |c| c.limits.connections_per_ip = 3);
    let a = node.addr();
    // Each held connection answers a request first, so it is surely accepted and counted.
    let held: Vec<Http> = (0..3)
        .map(|_| {
            let mut c = Http::connect(&a);
            assert_eq!(c.call("GET", "/health", None, None).status, 200);
            c
        })
        .collect();
    let mut extra = Http::connect(&a);
    let r = extra.read().expect("an answer, not a silent drop");
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (429, Some("rate_limited"))
    );
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!(retry >= 1, "{retry}");
    drop(held);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(request(&a, "GET", "/health", None, None).0, 200);
}

#[test]
fn messages_and_typing_per_socket_are_limited() {
    let db = TestDb::new();
    let node = start_with(&db, |c| c.websocket.max_events_per_sec = 5);
    let a = node.addr();
    let u = register(&a, "flood");
    let room = create_room(&a, &u.token);
    let mut w = Ws::connect(&a, &u.token);
    w.join(&room, None);
    // Creating the room counted against the user's rate too: start a fresh second.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    for i in 0..8 {
        w.send(
            "send_message",
            json!({"room_id": room, "content": format!("f{i}"), "client_msg_id": format!("f{i}")}),
        );
    }
    let (mut acks, mut limited) = (0, 0);
    while acks + limited < 8 {
        let v = w
            .next_within(std::time::Duration::from_secs(5))
            .expect("an answer per send");
        match v["event"].as_str() {
            Some("message_ack") => acks += 1,
            Some("error") => {
                assert_eq!(v["data"]["code"], "rate_limited");
                assert!(v["data"]["client_msg_id"].is_string());
                limited += 1;
            }
            _ => {}
        }
    }
    assert_eq!((acks, limited), (5, 3));
    w.send("typing_start", json!({"room_id": room}));
    assert_eq!(w.expect("error")["code"], "rate_limited");
    // The socket stays usable after the window.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    w.send("ping", json!(7));
    assert_eq!(w.expect("pong"), json!(7));
}
