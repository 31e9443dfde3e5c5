//! The upload side's limits and lifecycle: `multipart/form-data` forms with one file
//! part, the uploader's and the room's quotas (also under concurrent uploads through two
//! nodes), the per-minute limit across the cluster, the sweeper of files never
//! attached, downloads from a hot standby, and a node killed mid-upload.

use crate::files::{download, hex_sha256, pattern, upload, uploaded};
use crate::support::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const B: &str = "----chatdTestBoundary7MA4YWxk";

/// A form with `parts` of (headers, bytes), delimited by [`B`].
fn form(parts: &[(String, &[u8])]) -> Vec<u8> {
    let mut b = b"--".to_vec();
    b.extend_from_slice(B.as_bytes());
    for (headers, data) in parts {
        b.extend_from_slice(b"\r\n");
        b.extend_from_slice(headers.as_bytes());
        b.extend_from_slice(b"\r\n\r\n");
        b.extend_from_slice(data);
        b.extend_from_slice(format!("\r\n--{B}").as_bytes());
    }
    b.extend_from_slice(b"--\r\n");
    b
}

fn file_part(name: &str) -> String {
    format!(
        "Content-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
         Content-Type: application/octet-stream"
    )
}

fn field(name: &str) -> String {
    format!("Content-Disposition: form-data; name=\"{name}\"")
}

/// `POST /rooms/:room/files{query}` with a multipart `body`, sent in pieces.
fn post_form(addr: &str, token: &str, room: &str, query: &str, body: &[u8]) -> Resp {
    let mut c = Http::connect(addr);
    c.r.get_ref()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "POST /rooms/{room}/files{query} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary={B}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    c.send_raw(head.as_bytes());
    for piece in body.chunks(100_003) {
        // A refused upload closes the connection before the rest is sent.
        use std::io::Write;
        if c.r.get_mut().write_all(piece).is_err() {
            break;
        }
    }
    c.read().expect("an answer")
}

fn count(db: &TestDb, sql: &str) -> i64 {
    db.client().query_one(sql, &[]).unwrap().get(0)
}

fn stored(db: &TestDb) -> (i64, i64) {
    (
        count(db, "SELECT count(*) FROM files"),
        count(db, "SELECT count(*) FROM file_chunks"),
    )
}

/// A browser's form: a text field, then one file part of 700 KiB (three chunks of
/// storage) cut across the body's pieces. Stored under the part's `filename` (or
/// `?name=` when given), its bytes exactly the part's (not the delimiters, not the
/// field), served identical by the other node. Fails if the parser keeps delimiter
/// bytes, loses bytes cut between two pieces, or takes the field as the file.
#[test]
fn a_form_upload_stores_its_one_file_part() {
    let db = TestDb::new();
    let (n1, n2) = (start(&db), start(&db));
    let (a, b) = (n1.addr(), n2.addr());
    let alice = register(&a, "form");
    let room = create_room(&a, &alice.token);
    let bytes = pattern(700 * 1024 + 3);
    let body = form(&[
        (field("caption"), b"not the file"),
        (file_part("holiday photo.bin"), &bytes),
    ]);
    let r = post_form(&a, &alice.token, &room, "", &body);
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let f = r.json();
    assert_eq!(f["name"], "holiday photo.bin");
    assert_eq!(f["size"], bytes.len());
    assert_eq!(f["sha256"], hex_sha256(&bytes));
    let (head, got) = download(&b, &alice.token, f["id"].as_str().unwrap(), "");
    assert_eq!(head.status, 200);
    assert!(got == bytes, "the bytes differ");
    assert_eq!(stored(&db), (1, 3));
    // `?name=` wins over the part's filename.
    let r = post_form(
        &b,
        &alice.token,
        &room,
        "?name=chosen.txt",
        &form(&[(file_part("x.bin"), b"hello")]),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["name"], "chosen.txt");
}

/// Two file parts, none (only a field, or an empty file input), a body cut before its
/// closing delimiter, a multipart type without a boundary: 400 with their codes, and
/// nothing stored (the first of two files was already written when the second
/// appeared: rolled back). Fails if any of them stores a file or answers 201.
#[test]
fn a_form_that_is_not_one_file_is_400_and_stores_nothing() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let alice = register(&a, "bad");
    let room = create_room(&a, &alice.token);
    let big = pattern(300 * 1024);
    let code = |r: Resp| (r.status, r.json()["code"].clone());
    let two = form(&[(file_part("a.bin"), &big), (file_part("b.bin"), b"two")]);
    assert_eq!(
        code(post_form(&a, &alice.token, &room, "", &two)),
        (400, json!("multipart_many_files"))
    );
    let none = form(&[(field("caption"), b"hi"), (file_part(""), b"")]);
    assert_eq!(
        code(post_form(&a, &alice.token, &room, "", &none)),
        (400, json!("multipart_no_file"))
    );
    let mut cut = form(&[(file_part("c.bin"), &big)]);
    cut.truncate(cut.len() - 8);
    assert_eq!(
        code(post_form(&a, &alice.token, &room, "", &cut)),
        (400, json!("multipart_invalid"))
    );
    let mut c = Http::connect(&a);
    c.send_raw(
        format!(
            "POST /rooms/{room}/files HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\n\
             Content-Type: multipart/form-data\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
            alice.token
        )
        .as_bytes(),
    );
    assert_eq!(
        code(c.read().expect("an answer")),
        (400, json!("multipart_invalid"))
    );
    assert_eq!(stored(&db), (0, 0));
}

/// The uploader's quota: a raw upload over what is left is 413 `quota_exceeded` from
/// its head (the body is never sent: a server that waited for it would time out), a
/// form over it is refused as its bytes pass the quota; the room's quota holds for
/// another member. Nothing partial is left. Fails if a quota is not enforced, is
/// enforced only after the whole body, or a refused upload leaves rows.
#[test]
fn quotas_refuse_with_413_and_leave_nothing() {
    let db = TestDb::new();
    let node = start_with(&db, |c| {
        c.files.user_quota_bytes = 1 << 20;
        c.files.room_quota_bytes = 1536 << 10;
    });
    let a = node.addr();
    let (alice, bob) = (register(&a, "qa"), register(&a, "qb"));
    let room = create_room(&a, &alice.token);
    join_room(&a, &bob.token, &room);
    uploaded(&a, &alice.token, &room, "one", &pattern(600 << 10));
    let mut c = Http::connect(&a);
    c.r.get_ref()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    c.send_raw(
        format!(
            "POST /rooms/{room}/files?name=two HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\n\
             Content-Length: {}\r\n\r\n",
            alice.token,
            600 << 10
        )
        .as_bytes(),
    );
    let r = c.read().expect("refused before the body");
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (413, json!("quota_exceeded"))
    );
    let r = post_form(
        &a,
        &alice.token,
        &room,
        "",
        &form(&[(file_part("f.bin"), &pattern(600 << 10))]),
    );
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (413, json!("quota_exceeded")),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(stored(&db), (1, 3), "nothing of the refused uploads");
    // Under her own quota, alice still fits 400 KiB.
    uploaded(&a, &alice.token, &room, "small", &pattern(400 << 10));
    // Bob has his whole quota, but the room has 1536 - 1000 KiB left.
    let r = upload(&a, &bob.token, &room, "b", &pattern(600 << 10));
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (413, json!("quota_exceeded"))
    );
    assert!(r.json()["message"].as_str().unwrap().contains("room"));
    uploaded(&a, &bob.token, &room, "b", &pattern(500 << 10));
    let used = count(&db, "SELECT sum(size)::int8 FROM files");
    assert_eq!(used, (600 + 400 + 500) << 10);
}

/// Eight uploads of 300 KiB by one user at once, through two nodes, against a quota of
/// 1 MiB: exactly three are stored and the committed total stays under the quota (the
/// last check runs under the uploader's lock, each upload seeing the others' commits).
/// Fails if concurrent uploads each see only what was committed when they started.
#[test]
fn concurrent_uploads_never_pass_the_quota() {
    let db = TestDb::new();
    let tweak = |c: &mut chatd::config::Config| {
        c.files.user_quota_bytes = 1 << 20;
        c.files.uploads_per_minute = 0;
    };
    let (n1, n2) = (start_with(&db, tweak), start_with(&db, tweak));
    let (a, b) = (n1.addr(), n2.addr());
    let alice = register(&a, "qc");
    let room = create_room(&a, &alice.token);
    let body = pattern(300 << 10);
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|i| {
                let addr = if i % 2 == 0 { a.clone() } else { b.clone() };
                let (tok, room, body) = (&alice.token, &room, &body);
                s.spawn(move || upload(&addr, tok, room, "c", body).status)
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok = statuses.iter().filter(|s| **s == 201).count();
    assert_eq!(ok, 3, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 413),
        "{statuses:?}"
    );
    let used = count(&db, "SELECT sum(size)::int8 FROM files");
    assert!(used <= 1 << 20, "{used}");
    assert_eq!(stored(&db), (3, 6));
}

/// `files.uploads_per_minute` holds across the cluster: 3 a minute, two uploads through
/// node 1 and one through node 2, and node 2's second is refused (it counted one
/// itself). Fails if the limit is counted per node only.
#[test]
fn the_upload_rate_holds_across_nodes() {
    let db = TestDb::new();
    let tweak = |c: &mut chatd::config::Config| c.files.uploads_per_minute = 3;
    let (n1, n2) = (start_with(&db, tweak), start_with(&db, tweak));
    let (a, b) = (n1.addr(), n2.addr());
    let alice = register(&a, "rate");
    let room = create_room(&a, &alice.token);
    // The window is the database's minute: stay clear of its end.
    let into: f64 = db
        .client()
        .query_one("SELECT extract(second FROM now())::float8", &[])
        .unwrap()
        .get(0);
    if into > 50.0 {
        std::thread::sleep(Duration::from_secs_f64(61.0 - into));
    }
    for addr in [&a, &a, &b] {
        uploaded(addr, &alice.token, &room, "r", b"x");
    }
    let r = upload(&b, &alice.token, &room, "r", b"x");
    assert_eq!(r.status, 429, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.header("retry-after").is_some());
}

/// The sweeper (TTL of 2 s, a pass every second, on both nodes): an upload never
/// attached is deleted with every chunk; an attached file and one uploaded just now
/// stay. Fails if the sweeper misses expired uploads, touches attached or fresh ones,
/// or leaves chunks behind.
#[test]
fn the_sweeper_removes_only_expired_unattached_uploads() {
    let db = TestDb::new();
    let tweak = |c: &mut chatd::config::Config| {
        c.files.unattached_ttl_secs = Some(2);
        c.files.sweep_interval_secs = 1;
    };
    let (n1, _n2) = (start_with(&db, tweak), start_with(&db, tweak));
    let a = n1.addr();
    let alice = register(&a, "sw");
    let room = create_room(&a, &alice.token);
    let kept = uploaded(&a, &alice.token, &room, "kept", &pattern(300 << 10));
    let (s, m) = request(
        &a,
        "POST",
        &format!("/rooms/{room}/messages"),
        Some(&alice.token),
        Some(&json!({"content": "with a file", "attachments": [{"file_id": kept["id"]}]})),
    );
    assert_eq!(s, 201, "{m}");
    let lost: Value = uploaded(&a, &alice.token, &room, "lost", &pattern(600 << 10));
    assert_eq!(stored(&db), (2, 5));
    let deadline = Instant::now() + Duration::from_secs(20);
    while count(&db, "SELECT count(*) FROM files WHERE name = 'lost'") > 0 {
        assert!(Instant::now() < deadline, "the unattached upload stays");
        std::thread::sleep(Duration::from_millis(100));
    }
    let fresh = uploaded(&a, &alice.token, &room, "fresh", b"new");
    assert_eq!(
        stored(&db),
        (2, 3),
        "the attached file's 2 chunks, fresh's 1"
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM files WHERE attached_message_id IS NOT NULL"
        ),
        1
    );
    let (r, body) = download(&a, &alice.token, kept["id"].as_str().unwrap(), "");
    assert_eq!((r.status, body.len()), (200, 300 << 10));
    assert_eq!(
        download(&a, &alice.token, lost["id"].as_str().unwrap(), "")
            .0
            .status,
        404
    );
    assert_eq!(
        download(&a, &alice.token, fresh["id"].as_str().unwrap(), "")
            .0
            .status,
        200
    );
}

/// With a hot standby configured, a file the standby holds is served from it (its read
/// counter moves) byte for byte; with its replay paused, a file uploaded since is
/// served from the primary (a fallback counted), byte for byte. Fails if downloads
/// never use the standby, or if a standby that lacks the file breaks the download.
#[test]
fn downloads_come_from_a_standby_that_holds_the_file() {
    use crate::replicas::Pair;
    use std::sync::atomic::Ordering::Relaxed;
    let pair = Pair::start();
    let name = "chatd_files_standby";
    Pair::sql(
        &pair.primary,
        "postgres",
        &format!("CREATE DATABASE {name}"),
    );
    let node = start_on(&format!("{}/{name}", pair.primary), |c| {
        c.database.read_url = vec![format!("{}/{name}", pair.standby)];
    });
    let a = node.addr();
    let m = node.handle.metrics.clone();
    let alice = register(&a, "sb");
    let room = create_room(&a, &alice.token);
    let old = pattern(600 << 10);
    let f = uploaded(&a, &alice.token, &room, "old", &old);
    pair.caught_up();
    let reads = m.replica_reads.load(Relaxed);
    let (head, body) = download(&a, &alice.token, f["id"].as_str().unwrap(), "");
    assert_eq!(head.status, 200);
    assert!(body == old, "the standby's bytes differ");
    assert!(
        m.replica_reads.load(Relaxed) >= reads + 3,
        "three chunks read on the standby"
    );
    Pair::sql(&pair.standby, "postgres", "SELECT pg_wal_replay_pause()");
    let new = pattern((300 << 10) + 7);
    let g = uploaded(&a, &alice.token, &room, "new", &new);
    let fallbacks = m.replica_fallbacks.load(Relaxed);
    let (head, body) = download(&a, &alice.token, g["id"].as_str().unwrap(), "");
    assert_eq!(head.status, 200);
    assert!(body == new, "the primary's bytes differ");
    assert!(m.replica_fallbacks.load(Relaxed) > fallbacks);
    // A range of the old file still comes from the standby.
    let reads = m.replica_reads.load(Relaxed);
    let (head, body) = download(
        &a,
        &alice.token,
        f["id"].as_str().unwrap(),
        "Range: bytes=300000-300099\r\n",
    );
    assert_eq!(head.status, 206);
    assert!(body == old[300_000..300_100]);
    assert!(m.replica_reads.load(Relaxed) > reads);
    Pair::sql(&pair.standby, "postgres", "SELECT pg_wal_replay_resume()");
    drop(node);
}

/// A node process killed (SIGKILL) while it streams an upload: its database session
/// ends, its transaction with it, and no `files` or `file_chunks` row remains; the
/// other node stores the same file afterwards. Fails if an upload's rows could commit
/// before its body is whole.
#[test]
fn a_node_killed_mid_upload_leaves_nothing() {
    let db = TestDb::new();
    let mut p1 = Process::start(&db, "kill-1");
    let p2 = Process::start(&db, "kill-2");
    let alice = register(&p1.addr, "kill");
    let room = create_room(&p1.addr, &alice.token);
    let mut c = Http::connect(&p1.addr);
    c.send_raw(
        format!(
            "POST /rooms/{room}/files?name=k.bin HTTP/1.1\r\nHost: t\r\n\
             Authorization: Bearer {}\r\nContent-Length: {}\r\n\r\n",
            alice.token,
            5 << 20
        )
        .as_bytes(),
    );
    c.send_raw(&pattern(2 << 20));
    let writing = || {
        count(
            &db,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
               AND state LIKE 'idle in transaction%' AND query LIKE 'INSERT INTO file%'",
        )
    };
    let wait = |want: i64, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(15);
        while writing() != want {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait(1, "the node writes the upload's chunks");
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &p1.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let _ = p1.child.wait();
    wait(0, "the killed node's transaction ends");
    assert_eq!(stored(&db), (0, 0));
    drop(c);
    let f = uploaded(&p2.addr, &alice.token, &room, "k.bin", &pattern(5 << 20));
    assert_eq!(f["size"], 5 << 20);
    assert_eq!(stored(&db), (1, 20));
}
