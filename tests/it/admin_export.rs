//! Exports of the server API (`GET /admin/users/:id/export`, `GET /admin/rooms/:id/
//! export`): NDJSON streamed with chunked transfer encoding, content and order, who may
//! ask, a large room exported to a slow reader with the node's memory flat, and a client
//! that leaves mid-export freeing its worker.

use crate::admin::{KEY, with_key};
use crate::support::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Sends a GET with the API key; the reader positioned at the body, and the head.
fn open(addr: &str, path: &str, token: Option<&str>) -> (BufReader<TcpStream>, Resp) {
    let mut c = Http::connect(addr);
    c.r.get_ref()
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    c.send_raw(&build("GET", path, token, None, true));
    let head = read_response(&mut c.r, true).expect("a head");
    (c.r, head)
}

/// Reads one chunk of a chunked body: `None` at the terminating chunk.
fn chunk(r: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut size = String::new();
    r.read_line(&mut size).expect("a chunk size");
    let n = usize::from_str_radix(size.trim(), 16).expect("hex size");
    let mut data = vec![0; n + 2];
    r.read_exact(&mut data).expect("the chunk");
    assert_eq!(&data[n..], b"\r\n");
    data.truncate(n);
    (n > 0).then_some(data)
}

/// The whole NDJSON body of an export, as values.
fn export(addr: &str, path: &str) -> Vec<Value> {
    let (mut r, head) = open(addr, path, Some(KEY));
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(head.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(head.header("transfer-encoding"), Some("chunked"));
    assert_eq!(head.header("content-length"), None);
    let mut body = Vec::new();
    while let Some(c) = chunk(&mut r) {
        body.extend(c);
    }
    body.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("a JSON line"))
        .collect()
}

fn key_request(addr: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    request(addr, method, path, Some(KEY), body)
}

#[test]
fn exports_are_ndjson_in_order_with_versions_and_audited() {
    let db = TestDb::new();
    let node = start_with(&db, with_key);
    let a = node.addr();
    let alice = register(&a, "exp");
    let bob = register(&a, "other");
    let room = create_room(&a, &alice.token);
    join_room(&a, &bob.token, &room);
    let mut c = Http::connect(&a);
    let first = post_message(&mut c, &alice.token, &room, "first draft");
    post_message(&mut c, &bob.token, &room, "bob says hi");
    post_message(&mut c, &alice.token, &room, "second");
    let mid = first["id"].as_i64().unwrap();
    for text in ["first, edited", "first, final"] {
        let r = c.call(
            "PATCH",
            &format!("/rooms/{room}/messages/{mid}"),
            Some(&alice.token),
            Some(&json!({"content": text})),
        );
        assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    }
    let head = room_head(&a, &alice.token, &room);

    let lines = export(&a, &format!("/admin/rooms/{room}/export"));
    let seqs: Vec<i64> = lines.iter().map(|l| l["seq"].as_i64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=head).collect::<Vec<_>>(),
        "the whole stream in order"
    );
    let (s, page) = request(
        &a,
        "GET",
        &format!("/rooms/{room}/messages?limit=100"),
        Some(&alice.token),
        None,
    );
    assert_eq!(s, 200);
    let mut history: Vec<Value> = page["messages"].as_array().unwrap().clone();
    history.sort_by_key(|m| m["seq"].as_i64());
    assert_eq!(lines, history, "the entries as history pages show them");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["kind"] == "message_edited")
            .count(),
        2
    );

    let lines = export(&a, &format!("/admin/users/{}/export", alice.id));
    let types: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["profile", "membership", "message", "message"]);
    assert_eq!(lines[0]["id"], alice.id.as_str());
    assert_eq!(lines[0]["username"], alice.username.as_str());
    assert_eq!(lines[1]["room_id"], room.as_str());
    assert_eq!(lines[1]["role"], "owner");
    assert_eq!(lines[2]["content"], "first, final");
    let versions: Vec<&str> = lines[2]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["content"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["first draft", "first, edited"]);
    assert_eq!(lines[3]["content"], "second");
    assert_eq!(lines[3]["versions"], json!([]));

    let (s, page) = key_request(&a, "GET", "/admin/audit", None);
    assert_eq!(s, 200);
    let actions: Vec<&str> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions[..2], ["user.export", "room.export"]);
    // The connection stays usable after a streamed answer.
    let mut k = Http::connect(&a);
    k.send_raw(&build(
        "GET",
        &format!("/admin/rooms/{room}/export"),
        Some(KEY),
        None,
        true,
    ));
    let h = read_response(&mut k.r, true).unwrap();
    assert_eq!(h.status, 200);
    while chunk(&mut k.r).is_some() {}
    assert_eq!(k.call("GET", "/health", None, None).status, 200);
}

#[test]
fn exports_answer_only_api_keys_and_known_ids() {
    let db = TestDb::new();
    let node = start_with(&db, with_key);
    let a = node.addr();
    let u = register(&a, "exp");
    let room = create_room(&a, &u.token);
    for path in [
        format!("/admin/users/{}/export", u.id),
        format!("/admin/rooms/{room}/export"),
    ] {
        assert_eq!(request(&a, "GET", &path, None, None).0, 401, "{path}");
        assert_eq!(request(&a, "GET", &path, Some("nope"), None).0, 401);
        assert_eq!(request(&a, "GET", &path, Some(&u.token), None).0, 403);
        assert_eq!(request(&a, "POST", &path, Some(KEY), None).0, 405);
    }
    let unknown = uuid::Uuid::new_v4();
    let (s, e) = key_request(&a, "GET", &format!("/admin/users/{unknown}/export"), None);
    assert_eq!((s, e["code"].as_str()), (404, Some("user_not_found")));
    let (s, e) = key_request(&a, "GET", &format!("/admin/rooms/{unknown}/export"), None);
    assert_eq!((s, e["code"].as_str()), (404, Some("room_not_found")));
    let (s, _) = key_request(&a, "GET", "/admin/rooms/not-a-uuid/export", None);
    assert_eq!(s, 404);
}

/// Seeds `n` messages of `bytes` characters each into `room` by `user`, as the writer
/// stores them.
fn seed(db: &TestDb, room: &str, user: &str, n: i64, bytes: i32) {
    let room: uuid::Uuid = room.parse().unwrap();
    let uid: uuid::Uuid = user.parse().unwrap();
    db.client()
        .execute(
            "WITH s AS (UPDATE rooms SET last_seq = last_seq + $3 WHERE id = $1
                        RETURNING last_seq - $3 AS base)
             INSERT INTO messages (room_id, seq, user_id, username, content)
             SELECT $1, s.base + g, $2, 'seed', g || ' ' || repeat('x', $4)
             FROM s, generate_series(1, $3) g",
            &[&room, &uid, &n, &bytes],
        )
        .unwrap();
}

/// Resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn a_large_room_exports_to_a_slow_reader_in_constant_memory() {
    let db = TestDb::new();
    let dir = std::env::temp_dir().join(format!("chatd-export-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("server.toml");
    let base = std::fs::read_to_string(loadtest_config()).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "{base}\n[[api_keys]]\nname = \"backend\"\nkey_sha256 = \"{}\"\n",
            crate::admin::digest(KEY)
        ),
    )
    .unwrap();
    let p = Process::start_with(
        &db,
        "export-1",
        "warn",
        std::process::Stdio::null(),
        Some(&cfg),
    );
    let a = p.addr.clone();
    let u = register(&a, "big");
    let room = create_room(&a, &u.token);
    // 50,000 messages of about 1 KiB: an export of about 60 MB.
    const N: i64 = 50_000;
    seed(&db, &room, &u.id, N, 1000);
    let pid = p.child.id();
    // Warm the node (pools, first requests) before the baseline.
    assert_eq!(
        export(&a, &format!("/admin/users/{}/export", u.id)).len(),
        2 + N as usize
    );
    let baseline = rss_kib(pid);

    let (mut r, head) = open(&a, &format!("/admin/rooms/{room}/export"), Some(KEY));
    assert_eq!(head.status, 200);
    // A reader that stops: the node must not buffer the export meanwhile.
    std::thread::sleep(Duration::from_millis(1500));
    let mut peak = rss_kib(pid);
    let (mut lines, mut bytes, mut last_seq) = (0i64, 0usize, 0i64);
    let mut partial = Vec::new();
    let started = Instant::now();
    while let Some(c) = chunk(&mut r) {
        bytes += c.len();
        partial.extend_from_slice(&c);
        while let Some(end) = partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = partial.drain(..=end).collect();
            let v: Value = serde_json::from_slice(&line).unwrap();
            let seq = v["seq"].as_i64().unwrap();
            assert!(seq > last_seq, "in seq order");
            last_seq = seq;
            lines += 1;
        }
        // Slow: a pause every 4 MB, and the node's memory sampled.
        if bytes / (4 << 20) != (bytes - c.len()) / (4 << 20) {
            std::thread::sleep(Duration::from_millis(300));
            peak = peak.max(rss_kib(pid));
        }
    }
    assert!(partial.is_empty());
    let head_seq = room_head(&a, &u.token, &room);
    assert_eq!((lines, last_seq), (head_seq, head_seq), "every entry");
    assert!(bytes > 50 << 20, "{bytes} bytes");
    let grew = peak.saturating_sub(baseline);
    eprintln!(
        "export of {bytes} bytes in {:?}: RSS {baseline} KiB, peak {peak} KiB (+{grew})",
        started.elapsed()
    );
    assert!(
        grew < 16 * 1024,
        "RSS grew by {grew} KiB for a {bytes}-byte export"
    );
}

#[test]
fn a_client_that_leaves_mid_export_frees_its_worker() {
    let db = TestDb::new();
    // One export worker: a worker left blocked would stall the next export for good.
    let node = start_with(&db, with_key);
    let a = node.addr();
    let u = register(&a, "big");
    let room = create_room(&a, &u.token);
    seed(&db, &room, &u.id, 20_000, 500);
    let (mut r, head) = open(&a, &format!("/admin/rooms/{room}/export"), Some(KEY));
    assert_eq!(head.status, 200);
    assert!(chunk(&mut r).is_some());
    std::thread::sleep(Duration::from_millis(300));
    r.get_mut().shutdown(std::net::Shutdown::Both).unwrap();
    drop(r);
    let abandoned = || {
        let (_, text) = metrics_text(&node.metrics());
        text.lines()
            .find_map(|l| l.strip_prefix("chatd_streams_abandoned_total "))
            .map(|v| v.trim().to_string())
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while abandoned().as_deref() != Some("1") {
        assert!(Instant::now() < deadline, "the worker never stopped");
        std::thread::sleep(Duration::from_millis(50));
    }
    let lines = export(&a, &format!("/admin/rooms/{room}/export"));
    assert_eq!(lines.len() as i64, room_head(&a, &u.token, &room));
    // The REST side and its pool are unaffected.
    let (s, _) = request(&a, "GET", "/me", Some(&u.token), None);
    assert_eq!(s, 200);
}

/// `GET /metrics` on the metrics listener: status and text.
fn metrics_text(addr: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, out)
}
