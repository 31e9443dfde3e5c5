//! The embedded HTTP/1.1 server: limits, errors, keep-alive, pipelining, CORS, timeouts.

mod support;

use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use support::*;

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
    let m = raw_request(&a, "GET", "/metrics", None, None);
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
    assert!(c.read().is_none(), "idle connection should be closed");
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
