//! The embedded HTTP/1.1 server: limits, errors, keep-alive, pipelining, CORS, timeouts.

use crate::support::*;
use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

#[test]
fn health_ready_metrics_openapi() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    assert_eq!(
        request(&a, "GET", "/health", None, None),
        (200, json!({"status": "ok"}))
    );
    assert_eq!(request(&a, "GET", "/ready", None, None).0, 200);
    // Metrics are served on their own address only.
    assert_eq!(raw_request(&a, "GET", "/metrics", None, None).status, 404);
    let m = raw_request(&node.metrics(), "GET", "/metrics", None, None);
    let text = String::from_utf8(m.body).unwrap();
    assert!(
        text.contains("chatd_http_requests_total{route=\"GET /health\",status=\"200\"} 1"),
        "{text}"
    );
    for series in [
        "chatd_http_request_duration_seconds_bucket",
        "chatd_pool_in_use",
        "chatd_write_batch_size_count",
        "chatd_connections",
        "chatd_listener_up 1",
    ] {
        assert!(text.contains(series), "missing {series}");
    }
    let (s, spec) = request(&a, "GET", "/openapi.json", None, None);
    assert_eq!(s, 200);
    assert_eq!(spec["openapi"], "3.0.3");
    let head = raw_request(&a, "HEAD", "/health", None, None);
    assert_eq!((head.status, head.body.len()), (200, 0));
}

#[test]
fn unknown_routes_and_methods() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let (s, b) = request(&a, "GET", "/nope", None, None);
    assert_eq!(
        (s, b["statusCode"].as_u64(), b["code"].as_str()),
        (404, Some(404), Some("not_found"))
    );
    let r = raw_request(&a, "DELETE", "/health", None, None);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    assert_eq!(request(&a, "GET", "/auth/login", None, None).0, 405);
}

#[test]
fn malformed_and_oversized_requests() {
    let db = TestDb::new();
    let node = start_with(&db, |c| {
        c.http.max_header_bytes = 1024;
        c.http.max_body_bytes = 2048;
    });
    let a = node.addr();
    let mut c = Http::connect(&a);
    c.send_raw(b"GARBAGE\x01\x02 / HTTP/1.1\r\n\r\n");
    assert_eq!(c.read().unwrap().status, 400);

    let mut c = Http::connect(&a);
    c.send_raw(
        format!(
            "GET /health HTTP/1.1\r\nX-Big: {}\r\n\r\n",
            "a".repeat(2000)
        )
        .as_bytes(),
    );
    assert_eq!(c.read().unwrap().status, 431);

    let mut c = Http::connect(&a);
    c.send_raw(b"POST /auth/login HTTP/1.1\r\nContent-Length: 999999\r\n\r\n");
    let r = c.read().unwrap();
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (413, Some("payload_too_large"))
    );

    let mut c = Http::connect(&a);
    c.send_raw(
        b"POST /auth/login HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
    assert_eq!(c.read().unwrap().status, 411);

    let mut c = Http::connect(&a);
    c.send_raw(b"POST /auth/login HTTP/1.1\r\nContent-Length: abc\r\n\r\n");
    assert_eq!(c.read().unwrap().status, 400);

    // Malformed JSON is a 400 with its own code, and the connection stays usable.
    let mut c = Http::connect(&a);
    c.send_raw(b"POST /auth/login HTTP/1.1\r\nContent-Length: 5\r\n\r\n{oops");
    let r = c.read().unwrap();
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (400, Some("invalid_json"))
    );
    assert_eq!(c.call("GET", "/health", None, None).status, 200);

    // The server still serves others.
    assert_eq!(request(&a, "GET", "/health", None, None).0, 200);
}

#[test]
fn keep_alive_and_pipelining_answer_in_order() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let u = register(&a, "pipe");
    let room = create_room(&a, &u.token);
    let mut c = Http::connect(&a);
    // Mix answers served at once with answers from workers: order must hold.
    let mut batch = Vec::new();
    for i in 0..20 {
        if i % 2 == 0 {
            batch.extend(build("GET", "/health", None, None, true));
        } else {
            batch.extend(build(
                "POST",
                &format!("/rooms/{room}/messages"),
                Some(&u.token),
                Some(&json!({"content": format!("m{i}")})),
                true,
            ));
        }
    }
    c.send_raw(&batch);
    for i in 0..20 {
        let r = c.read().expect("response");
        if i % 2 == 0 {
            assert_eq!(r.status, 200, "request {i}");
        } else {
            assert_eq!(r.status, 201, "request {i}");
            assert_eq!(r.json()["content"], format!("m{i}"));
        }
    }
    // Seqs follow arrival order.
    let (_, page) = request(
        &a,
        "GET",
        &format!("/rooms/{room}/messages?limit=100"),
        Some(&u.token),
        None,
    );
    let contents: Vec<String> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|m| m["content"].as_str().unwrap().to_string())
        .collect();
    let expected: Vec<String> = (0..20)
        .filter(|i| i % 2 == 1)
        .map(|i| format!("m{i}"))
        .collect();
    assert_eq!(contents, expected);
}

#[test]
fn cors_allows_configured_origins_without_credentials() {
    let db = TestDb::new();
    // Default: any origin, as `*`, never with credentials (bearer tokens, no cookies).
    let node = start(&db);
    let mut c = Http::connect(&node.addr());
    c.send_raw(b"OPTIONS /rooms HTTP/1.1\r\nOrigin: http://app.example\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: authorization,content-type,x-evil\r\n\r\n");
    let r = c.read().unwrap();
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.header("access-control-allow-credentials"), None);
    // Only the headers the API reads, never an echo of what was asked.
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("authorization, content-type")
    );
    assert!(
        r.header("access-control-allow-methods")
            .unwrap()
            .contains("POST")
    );
    c.send_raw(b"GET /health HTTP/1.1\r\nOrigin: null\r\n\r\n");
    let r = c.read().unwrap();
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.header("access-control-allow-credentials"), None);
    drop(node);

    // A list: listed origins by name, others and `null` get nothing.
    let node = start_with(&db, |c| {
        c.http.cors_origins = vec!["https://app.example".into(), "null".into()]
    });
    let mut c = Http::connect(&node.addr());
    c.send_raw(b"GET /health HTTP/1.1\r\nOrigin: https://app.example\r\n\r\n");
    let r = c.read().unwrap();
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(r.header("vary"), Some("Origin"));
    for other in ["https://evil.example", "null"] {
        c.send_raw(format!("GET /health HTTP/1.1\r\nOrigin: {other}\r\n\r\n").as_bytes());
        let r = c.read().unwrap();
        assert_eq!(r.header("access-control-allow-origin"), None, "{other}");
    }
    c.send_raw(b"OPTIONS /rooms HTTP/1.1\r\nOrigin: https://evil.example\r\nAccess-Control-Request-Method: POST\r\n\r\n");
    let r = c.read().unwrap();
    assert_eq!(r.header("access-control-allow-methods"), None);
}

#[test]
fn slow_headers_time_out_and_idle_connections_close() {
    let db = TestDb::new();
    let node = start_with(&db, |c| {
        c.http.header_timeout_ms = 300;
        c.http.idle_timeout_secs = 1;
    });
    let a = node.addr();
    // Slowloris: a head that never completes gets 408 and the connection ends.
    let mut s = TcpStream::connect(&a).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nX-Slow: ").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 408"), "{out}");
    // An idle keep-alive connection is closed.
    let mut c = Http::connect(&a);
    assert_eq!(c.call("GET", "/health", None, None).status, 200);
    std::thread::sleep(Duration::from_millis(1800));
    // Closed means end of stream now, not a read that times out. (Fails if idle
    // connections stay open: shown by never closing an idle HTTP connection in
    // `EventLoop`'s timeout check: "idle connection should be closed: Err(WouldBlock)".)
    c.r.get_mut()
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut rest = [0u8; 64];
    match c.r.get_mut().read(&mut rest) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!(
            "idle connection should be closed: {:?}",
            other.map_err(|e| e.kind())
        ),
    }
    // Half-closed client: the answer still arrives.
    let mut s = TcpStream::connect(&a).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\n\r\n").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}

#[test]
fn openapi_lists_exactly_the_served_routes() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let (_, spec) = request(&a, "GET", "/openapi.json", None, None);
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, ops) in spec["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    documented.sort();
    let mut served: Vec<(String, String)> = chatd::http::routes::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    served.sort();
    assert_eq!(documented, served);
    // Each documented route is really routed (never 404/405 for its method).
    let room = "00000000-0000-7000-8000-000000000000";
    let empty = json!({});
    for (m, p) in &served {
        let path = p.replace("{id}", room);
        let r = raw_request(
            &a,
            m,
            &path,
            None,
            if m == "POST" { Some(&empty) } else { None },
        );
        assert!(
            r.status != 404 || p.contains("{id}"),
            "{m} {p} -> {}",
            r.status
        );
        assert_ne!(r.status, 405, "{m} {p}");
    }
}

/// Fails if accepting does not stop at `server.max_connections` (the eleventh client is
/// answered at once), if it resumes at the first release instead of below 90 % of the
/// limit (answered while 9 of 10 are open: shown by resuming below the limit itself in
/// `Slots::new`), or if no release resumes it (never answered: shown by not waking the
/// parked loops in `Slots::release`; nothing else resumes them).
#[test]
fn accepting_pauses_at_the_limit_and_resumes_below_ninety_percent() {
    let db = TestDb::new();
    let node = start_with(&db, |c| c.server.max_connections = 10);
    let a = node.addr();
    // Start from a quiet node: the start-up checks' connections are gone.
    let open = || node.handle.metrics.connections.load(Relaxed);
    let quiet = std::time::Instant::now();
    while open() != 0 {
        assert!(
            quiet.elapsed() < Duration::from_secs(5),
            "connections linger"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut held: Vec<Http> = (0..10)
        .map(|_| {
            let mut c = Http::connect(&a);
            assert_eq!(c.call("GET", "/health", None, None).status, 200);
            c
        })
        .collect();
    // The kernel completes the eleventh connection; the node leaves it in the backlog.
    let mut extra = TcpStream::connect(&a).unwrap();
    extra.write_all(b"GET /health HTTP/1.1\r\n\r\n").unwrap();
    extra
        .set_read_timeout(Some(Duration::from_millis(400)))
        .unwrap();
    let mut first = [0u8; 12];
    assert!(extra.read(&mut first).is_err(), "answered over the limit");
    held.pop();
    assert!(
        extra.read(&mut first).is_err(),
        "accepting resumed with 9 of 10 open"
    );
    held.pop();
    let released = std::time::Instant::now();
    extra
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    extra
        .read_exact(&mut first)
        .expect("answered once 8 of 10 are open");
    assert_eq!(&first, b"HTTP/1.1 200");
    eprintln!("answered {:?} after the release", released.elapsed());
    drop(held);
}

/// Fails if the bytes a client sends right behind its upgrade request are lost in the
/// move from the HTTP session to the WebSocket session (no pong: shown by handing the
/// WebSocket session an empty `leftover`), or if a request pipelined before the upgrade
/// is not answered first, in order.
#[test]
fn an_upgrade_behind_a_pipelined_request_keeps_the_frames_sent_with_it() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let u = register(&a, "early");
    let mut bytes = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    bytes.extend_from_slice(
        format!(
            "GET /ws?token={} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            u.token
        )
        .as_bytes(),
    );
    // A masked client text frame: {"event":"ping","data":7}.
    let payload = br#"{"event":"ping","data":7}"#;
    let mask = [1u8, 2, 3, 4];
    bytes.extend_from_slice(&[0x81, 0x80 | payload.len() as u8]);
    bytes.extend_from_slice(&mask);
    bytes.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    let mut c = Http::connect(&a);
    c.send_raw(&bytes);
    assert_eq!(c.read().expect("the pipelined answer").status, 200);
    let switched = read_response(&mut c.r, true).expect("the upgrade's answer");
    assert_eq!(switched.status, 101);
    assert_eq!(
        switched.header("sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    let mut header = [0u8; 2];
    c.r.read_exact(&mut header).unwrap();
    assert_eq!(header[0], 0x81, "a final text frame");
    let mut text = vec![0u8; usize::from(header[1])];
    c.r.read_exact(&mut text).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
    assert_eq!(v, json!({"event": "pong", "data": 7}));
}
