//! What a hostile member, admin or operator could do with the data path and the
//! deployment: deletions that leave search rows behind, logs a client can flood, look-
//! alike names, spoofed attachments, retention that keeps edited text, policies that
//! differ between nodes, metrics and node names exposed to the public.

use crate::support::*;
use serde_json::json;
use std::time::{Duration, Instant};

/// Stores `n` messages of `words` words each in `room` with SQL, as a writer would
/// (seqs after the room's last, `last_seq` moved in the same transaction): a backlog
/// the search indexer then works on for a while.
fn backlog(db: &TestDb, room: &str, user: &User, n: i64, words: usize) {
    let mut c = db.client();
    let room: uuid::Uuid = room.parse().unwrap();
    let uid: uuid::Uuid = user.id.parse().unwrap();
    let text: String = (0..words).map(|i| format!("word{i} ")).collect::<String>();
    let mut tx = c.transaction().unwrap();
    let first: i64 = tx
        .query_one(
            "SELECT last_seq FROM rooms WHERE id = $1 FOR UPDATE",
            &[&room],
        )
        .unwrap()
        .get(0);
    tx.execute(
        "INSERT INTO messages (room_id, seq, user_id, username, content)
         SELECT $1, $2 + g, $3, $4, $5 || g FROM generate_series(1, $6::bigint) g",
        &[&room, &first, &uid, &user.username, &text, &n],
    )
    .unwrap();
    tx.execute(
        "UPDATE rooms SET last_seq = last_seq + $2 WHERE id = $1",
        &[&room, &n],
    )
    .unwrap();
    tx.commit().unwrap();
}

/// Whether the search indexer is inside its statement that adds search rows.
fn indexer_adding(c: &mut postgres::Client) -> bool {
    c.query_one(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
           AND state = 'active' AND pid <> pg_backend_pid()
           AND query LIKE '%INSERT INTO message_search%'",
        &[],
    )
    .unwrap()
    .get::<_, i64>(0)
        > 0
}

/// Waits until `f` holds, at most `secs` seconds; whether it did.
fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

#[test]
fn a_room_deleted_while_the_indexer_works_on_it_leaves_no_search_rows() {
    let db = TestDb::new();
    // One long indexing transaction per backlog, never deferred for the write rate.
    let node = start_with(&db, |c| {
        c.messages.search_batch = 100_000;
        c.messages.search_defer_above = 0;
    });
    let a = node.addr();
    let owner = register(&a, "own");
    let mut watch = db.client();
    for attempt in 0..3 {
        let room = create_room(&a, &owner.token);
        backlog(&db, &room, &owner, 20_000, 40);
        assert!(
            eventually(20, || indexer_adding(&mut watch)),
            "attempt {attempt}: the indexer never started on the backlog"
        );
        // The deletion lands while the indexer's statement that read the messages runs.
        let (status, body) = request(
            &a,
            "DELETE",
            &format!("/rooms/{room}"),
            Some(&owner.token),
            None,
        );
        assert!(status == 204 || status == 200, "{status} {body}");
        assert!(eventually(30, || !indexer_adding(&mut watch)));
        // Two idle ticks: anything the indexer still had to commit is committed.
        std::thread::sleep(Duration::from_millis(1200));
        let rid: uuid::Uuid = room.parse().unwrap();
        let left: (i64, i64) = {
            let r = watch
                .query_one(
                    "SELECT (SELECT count(*) FROM message_search WHERE room_id = $1),
                            (SELECT count(*) FROM search_progress WHERE room_id = $1)",
                    &[&rid],
                )
                .unwrap();
            (r.get(0), r.get(1))
        };
        assert_eq!(
            left,
            (0, 0),
            "attempt {attempt}: the deleted room left (search rows, progress rows)"
        );
    }
    let m = &node.handle.metrics;
    assert_eq!(m.job_panics.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert_eq!(m.http_500.load(std::sync::atomic::Ordering::Relaxed), 0);
}

/// A temporary file with `text`, removed when dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(ext: &str, text: &str) -> TempFile {
        let p = std::env::temp_dir().join(format!(
            "chatd-safety-{}.{ext}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::write(&p, text).unwrap();
        TempFile(p)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The load-test configuration (abuse limits off) with `extra` TOML tables added.
fn config_file(extra: &str) -> TempFile {
    let base = std::fs::read_to_string(loadtest_config()).unwrap();
    TempFile::new("toml", &format!("{base}\n{extra}\n"))
}

#[test]
fn over_long_words_and_empty_searches_write_nothing_to_the_log() {
    let db = TestDb::new();
    let log = TempFile::new("log", "");
    let file = std::fs::File::create(&log.0).unwrap();
    let mut p = Process::start_with(&db, "notice-1", "info", file.into(), None);
    let a = p.addr.clone();
    let u = register(&a, "ntc");
    let room = create_room(&a, &u.token);
    let mut h = Http::connect(&a);
    // Each a token PostgreSQL's text search parser would find over 2,047 bytes long:
    // a word, a word of two-byte letters, a run of punctuation and spaces, a tag, a
    // hyphenated word, a run of three-byte dashes.
    let long = [
        "a".repeat(3000),
        "é".repeat(1100),
        "! ".repeat(1100),
        format!("<a {}>", "b=1 ".repeat(600)),
        "ab-".repeat(1100),
        "—".repeat(700),
    ];
    for (i, l) in long.iter().enumerate() {
        post_message(&mut h, &u.token, &room, &format!("needle{i} {l} tail{i}"));
        // The same as an edit of a message, which the indexer indexes again.
        let m = post_message(&mut h, &u.token, &room, &format!("plain{i}"));
        let r = h.call(
            "PATCH",
            &format!("/rooms/{room}/messages/{}", m["id"]),
            Some(&u.token),
            Some(&json!({ "content": format!("edited{i} {l}") })),
        );
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    // Indexed: the ordinary words of those messages are found.
    let found = |q: &str| {
        let (s, b) = request(
            &a,
            "GET",
            &format!("/rooms/{room}/search?q={q}"),
            Some(&u.token),
            None,
        );
        assert_eq!(s, 200, "{b}");
        b["messages"].as_array().map_or(0, |m| m.len())
    };
    assert!(eventually(20, || found(&format!(
        "edited{}",
        long.len() - 1
    )) == 1));
    for i in 0..long.len() {
        assert_eq!(found(&format!("needle{i}")), 1, "needle{i}");
        assert_eq!(found(&format!("tail{i}")), 1, "tail{i}");
        assert_eq!(found(&format!("edited{i}")), 1, "edited{i}");
    }
    // Searches with no word in them, or one word longer than any indexed.
    for q in ["%21%21%21", "%2D%2D", &"x".repeat(200)] {
        assert_eq!(found(q), 0, "{q}");
    }
    assert_eq!(p.terminate(), Some(0));
    let text = std::fs::read_to_string(&log.0).unwrap();
    let notices: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("NOTICE") || l.contains("too long") || l.contains("lexemes"))
        .collect();
    assert!(
        notices.is_empty(),
        "{} log lines from client input, e.g. {:?}",
        notices.len(),
        notices.first()
    );
}

#[test]
fn room_names_are_one_name_whatever_their_case_script_or_invisible_characters() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let u = register(&a, "rn");
    let create = |name: &str, visibility: &str| {
        request(
            &a,
            "POST",
            "/rooms",
            Some(&u.token),
            Some(&json!({"name": name, "visibility": visibility})),
        )
    };
    let (s, lobby) = create("lobby", "public");
    assert_eq!(s, 201, "{lobby}");
    // Look-alikes of a public room's name are that name.
    for same in [
        "LOBBY",
        "Lobby",
        " lobby ",
        "\u{4cf}\u{43e}\u{42c}\u{42c}\u{443}", // Cyrillic palochka, o, soft sign x2, u
        "l0bby",
        "1obby",
    ] {
        let (s, b) = create(same, "public");
        assert_eq!(
            (s, b["code"].as_str()),
            (409, Some("room_name_taken")),
            "{same:?}: {b}"
        );
    }
    // Names that hide or reorder what they show, or make a terminal ring, are refused.
    for bad in [
        "l\u{43e}bby",      // Latin and Cyrillic mixed
        "lob\u{200b}by",    // zero-width space
        "\u{200b}\u{200c}", // invisible only
        "\u{3164}",         // Hangul filler: blank
        "\u{202e}ybbol",    // right-to-left override
        "lob\u{2066}by",    // bidi isolate
        "lob\u{7}by",       // BEL
        "lob\u{1b}[31mby",  // ESC
        "lob\u{85}by",      // C1 control
    ] {
        let (s, b) = create(bad, "public");
        assert_eq!(
            (s, b["code"].as_str()),
            (400, Some("validation_failed")),
            "{bad:?}: {b}"
        );
    }
    // Stored normalised (NFC, trimmed); a composed and a decomposed name are one name.
    let (s, cafe) = create("  cafe\u{301}  ", "public");
    assert_eq!(s, 201, "{cafe}");
    assert_eq!(cafe["name"], "caf\u{e9}");
    assert_eq!(create("CAF\u{c9}", "public").0, 409);
    // Private rooms may share a name (it reveals nothing), but not become public then.
    let (s, private) = create("LOBBY", "private");
    assert_eq!(s, 201, "{private}");
    let id = private["id"].as_str().unwrap();
    let (s, b) = request(
        &a,
        "PATCH",
        &format!("/rooms/{id}"),
        Some(&u.token),
        Some(&json!({"visibility": "public"})),
    );
    assert_eq!(
        (s, b["code"].as_str()),
        (409, Some("room_name_taken")),
        "{b}"
    );
    // A rename follows the same rules.
    let other = create_room(&a, &u.token);
    for (name, status) in [
        ("L\u{43e}BBY", 400),
        ("LOBBY", 409),
        ("lob\u{feff}by", 400),
        ("lobby two", 200),
    ] {
        let (s, b) = request(
            &a,
            "PATCH",
            &format!("/rooms/{other}"),
            Some(&u.token),
            Some(&json!({"name": name})),
        );
        assert_eq!(s, status, "{name:?}: {b}");
    }
}

#[test]
fn attachment_names_that_reorder_or_hide_and_urls_with_userinfo_are_refused() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let u = register(&a, "att");
    let room = create_room(&a, &u.token);
    let post = |att: serde_json::Value| {
        request(
            &a,
            "POST",
            &format!("/rooms/{room}/messages"),
            Some(&u.token),
            Some(&json!({"content": "see attached", "attachments": [att]})),
        )
    };
    let ok = json!({"url": "https://files.example/a.pdf", "name": "invoice.pdf", "mime": "application/pdf", "size": 10});
    assert_eq!(post(ok.clone()).0, 201);
    for (field, value, says) in [
        ("name", "invoice\u{202e}fdp.exe", "name"),
        ("name", "invoice\u{2067}fdp.exe", "name"),
        ("name", "\u{200b}", "name"),
        ("name", "\u{3164}\u{200b}", "name"),
        ("name", "a\u{200f}.pdf", "name"),
        ("url", "https://bank.example@evil.example/a.pdf", "url"),
        ("url", "https://user:pw@files.example/a.pdf", "url"),
        (
            "url",
            "http://bank.example%40evil.example@evil.example/",
            "url",
        ),
    ] {
        let mut att = ok.clone();
        att[field] = json!(value);
        let (s, b) = post(att);
        assert_eq!(
            (s, b["code"].as_str()),
            (400, Some("invalid_payload")),
            "{value:?}: {b}"
        );
        let msg = b["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains(&format!("attachments[0].{says}")),
            "{value:?}: {b}"
        );
    }
}

#[test]
fn retention_leaves_no_text_of_an_expired_message_in_its_edit_entries_or_the_index() {
    let db = TestDb::new();
    let node = start_with(&db, |c| {
        c.retention.max_age_days = 1;
        c.retention.interval_secs = 1;
        c.retention.pause_ms = 0;
        c.http.history_cache_mb = 0;
    });
    let a = node.addr();
    let u = register(&a, "ret");
    let room = create_room(&a, &u.token);
    let mut h = Http::connect(&a);
    let m = post_message(&mut h, &u.token, &room, "original wording");
    let r = h.call(
        "PATCH",
        &format!("/rooms/{room}/messages/{}", m["id"]),
        Some(&u.token),
        Some(&json!({"content": "edited confidential wording"})),
    );
    assert_eq!(r.status, 200);
    let edit = r.json();
    post_message(&mut h, &u.token, &room, "a later message");
    let found = |q: &str| {
        let (s, b) = request(
            &a,
            "GET",
            &format!("/rooms/{room}/search?q={q}"),
            Some(&u.token),
            None,
        );
        assert_eq!(s, 200, "{b}");
        b["messages"].as_array().map_or(0, |m| m.len())
    };
    assert!(eventually(20, || found("confidential") == 1));
    // The original message expires; its edit entry and the later message do not.
    let rid: uuid::Uuid = room.parse().unwrap();
    let mid = m["id"].as_i64().unwrap();
    let mut c = db.client();
    c.execute(
        "UPDATE messages SET created_at = now() - interval '2 days' WHERE room_id = $1 AND id = $2",
        &[&rid, &mid],
    )
    .unwrap();
    assert!(eventually(20, || {
        c.query_one("SELECT count(*) FROM messages WHERE id = $1", &[&mid])
            .unwrap()
            .get::<_, i64>(0)
            == 0
    }));
    let (s, page) = request(
        &a,
        "GET",
        &format!("/rooms/{room}/messages"),
        Some(&u.token),
        None,
    );
    assert_eq!(s, 200);
    let entry = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == edit["id"])
        .cloned()
        .expect("the edit entry is still in the stream");
    assert_eq!(entry["content"], "", "{entry}");
    let stored: String = c
        .query_one(
            "SELECT content FROM messages WHERE id = $1",
            &[&edit["id"].as_i64().unwrap()],
        )
        .unwrap()
        .get(0);
    assert_eq!(stored, "");
    let rows: i64 = c
        .query_one(
            "SELECT (SELECT count(*) FROM message_search WHERE room_id = $1 AND message_id = $2)
                  + (SELECT count(*) FROM message_edits WHERE room_id = $1 AND message_id = $2)",
            &[&rid, &mid],
        )
        .unwrap()
        .get(0);
    assert_eq!(rows, 0);
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(found("confidential"), 0);
    assert_eq!(found("later"), 1);
}

#[test]
fn the_web_apps_policy_connects_to_its_own_origin_and_configured_ones_only() {
    let db = TestDb::new();
    let node = start(&db);
    let csp = |addr: &str| {
        let r = raw_request(addr, "GET", "/", None, None);
        assert_eq!(r.status, 200);
        r.header("content-security-policy")
            .unwrap_or_default()
            .to_string()
    };
    let own = csp(&node.addr());
    let connect = |csp: &str| {
        csp.split(';')
            .map(str::trim)
            .find(|d| d.starts_with("connect-src"))
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(connect(&own), "connect-src 'self'", "{own}");
    // (A process with the load-test settings next: nodes of one cluster share them.)
    drop(node);
    // A separate API origin is named, with its WebSocket form; nothing else.
    let cfg = config_file(
        "[http]\nconnect_origins = [\"https://api.example\", \"http://127.0.0.1:4000\"]\n",
    );
    let p = Process::start_with(
        &db,
        "csp-1",
        "warn",
        std::process::Stdio::inherit(),
        Some(&cfg.0),
    );
    assert_eq!(
        connect(&csp(&p.addr)),
        "connect-src 'self' https://api.example wss://api.example http://127.0.0.1:4000 ws://127.0.0.1:4000"
    );
}

#[test]
fn metrics_are_served_on_their_own_address_and_not_on_the_public_port() {
    let db = TestDb::new();
    let node = start(&db);
    let public = raw_request(&node.addr(), "GET", "/metrics", None, None);
    assert_eq!(
        public.status,
        404,
        "{}",
        String::from_utf8_lossy(&public.body)
    );
    drop(node);
    let port = free_port();
    let cfg = config_file(&format!(
        "[metrics]\nlisten = \"127.0.0.1:{port}\"\ntoken = \"scrape-secret-0123456789\"\n"
    ));
    let p = Process::start_with(
        &db,
        "metrics-1",
        "warn",
        std::process::Stdio::inherit(),
        Some(&cfg.0),
    );
    assert_eq!(
        raw_request(&p.addr, "GET", "/metrics", None, None).status,
        404
    );
    let scrape = format!("127.0.0.1:{port}");
    assert_eq!(
        raw_request(&scrape, "GET", "/metrics", None, None).status,
        401
    );
    assert_eq!(
        raw_request(&scrape, "GET", "/metrics", Some("wrong"), None).status,
        401
    );
    let ok = raw_request(
        &scrape,
        "GET",
        "/metrics",
        Some("scrape-secret-0123456789"),
        None,
    );
    assert_eq!(ok.status, 200);
    let text = String::from_utf8_lossy(&ok.body);
    assert!(text.contains("chatd_http_500_total 0"), "{text}");
    assert_eq!(
        raw_request(
            &scrape,
            "GET",
            "/health",
            Some("scrape-secret-0123456789"),
            None
        )
        .status,
        404
    );
}

#[test]
fn presence_events_do_not_name_the_node() {
    let db = TestDb::new();
    let n1 = start(&db);
    let n2 = start(&db);
    let (a1, a2) = (n1.addr(), n2.addr());
    let alice = register(&a1, "pa");
    let bob = register(&a1, "pb");
    let carol = register(&a1, "pc");
    let room = create_room(&a1, &alice.token);
    join_room(&a1, &bob.token, &room);
    join_room(&a1, &carol.token, &room);
    let mut wa = Ws::connect(&a1, &alice.token);
    wa.join(&room, None);
    // Bob comes online on node 2: Alice (node 1) hears it; then Carol on node 1, and
    // Bob (node 2) hears it.
    let mut wb = Ws::connect(&a2, &bob.token);
    wb.join(&room, None);
    let id = bob.id.clone();
    let p = wa.expect_where("presence", move |d| d["user_id"] == id.as_str());
    assert!(p.get("node_id").is_none(), "{p}");
    assert!(!p.to_string().contains(&n2.handle.node_id), "{p}");
    let mut wc = Ws::connect(&a1, &carol.token);
    wc.join(&room, None);
    let id = carol.id.clone();
    let p = wb.expect_where("presence", move |d| d["user_id"] == id.as_str());
    assert!(p.get("node_id").is_none(), "{p}");
    assert!(!p.to_string().contains(&n1.handle.node_id), "{p}");
    drop(wb);
    let id = bob.id.clone();
    let off = wa.expect_where("presence", move |d| {
        d["user_id"] == id.as_str() && d["status"] == "offline"
    });
    assert!(off.get("node_id").is_none(), "{off}");
    assert!(!off.to_string().contains(&n2.handle.node_id), "{off}");
}

#[test]
fn nodes_of_one_cluster_cannot_run_different_policies() {
    let db = TestDb::new();
    let first = start(&db);
    type Tweak = fn(&mut chatd::config::Config);
    let differing: [(Tweak, &str); 12] = [
        (|c| c.retention.max_age_days = 1, "retention.max_age_days"),
        (
            |c| c.messages.edit_window_secs = 60,
            "messages.edit_window_secs",
        ),
        (|c| c.messages.max_reactions = 3, "messages.max_reactions"),
        (
            |c| c.messages.max_attachments = 1,
            "messages.max_attachments",
        ),
        (
            |c| c.messages.search_language = "english".into(),
            "messages.search_language",
        ),
        (|c| c.database.notify_shards = 4, "database.notify_shards"),
        (
            |c| c.auth.access_secret = "another-access-secret-0123456789abcdef".into(),
            "auth.access_secret",
        ),
        (
            |c| c.auth.refresh_secret = "another-refresh-secret-0123456789abcdef".into(),
            "auth.refresh_secret",
        ),
        (|c| c.auth.access_ttl_secs = 60, "auth.access_ttl_secs"),
        (|c| c.auth.refresh_grace_secs = 0, "auth.refresh_grace_secs"),
        (
            |c| c.rooms.receipts_max_members = 5,
            "rooms.receipts_max_members",
        ),
        (
            |c| c.presence.node_timeout_secs = 30,
            "presence.node_timeout_secs",
        ),
    ];
    for (tweak, key) in differing {
        let mut c = config(&db.url);
        tweak(&mut c);
        match chatd::run(c) {
            Ok(h) => panic!("a node with another {key} started beside {}", h.node_id),
            Err(e) => {
                let e = e.to_string();
                assert!(e.contains(key), "{key}: {e}");
                assert!(!e.contains("another-"), "a secret in the message: {e}");
            }
        }
    }
    // A node with the same settings joins.
    let second = start(&db);
    drop((first, second));
    // With every node stopped, a new value is the cluster's from then on.
    let one_day = start_with(&db, |c| c.retention.max_age_days = 1);
    let refused = chatd::run(config(&db.url))
        .err()
        .expect("the old value is refused now");
    assert!(
        refused.to_string().contains("retention.max_age_days"),
        "{refused}"
    );
    drop(one_day);
    // The secrets are recorded as keyed fingerprints, never as themselves.
    let values: Vec<String> = db
        .client()
        .query("SELECT value FROM settings", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(values.iter().all(|v| !v.contains("secret")), "{values:?}");
}

#[test]
fn a_node_process_with_another_secret_exits_as_for_a_bad_config() {
    let db = TestDb::new();
    let _first = Process::start(&db, "secret-1");
    let mut child = std::process::Command::new(chatd_bin())
        .env("CHATD_CONFIG", loadtest_config())
        .env("DATABASE_URL", &db.url)
        .env("PORT", free_port().to_string())
        .env(
            "JWT_ACCESS_SECRET",
            "a-different-access-secret-0123456789abcdef",
        )
        .env(
            "JWT_REFRESH_SECRET",
            "acceptance-refresh-secret-0123456789abcdef",
        )
        .env("CHATD_NODE_ID", "secret-2")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("a node with another access secret kept running beside the first");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("auth.access_secret"), "{err}");
    assert!(!err.contains("a-different-access-secret"), "{err}");
}

#[test]
fn an_unsupported_http_version_is_answered_505() {
    let db = TestDb::new();
    let node = start(&db);
    for version in ["HTTP/1.2", "HTTP/2.0", "HTTP/3.0"] {
        let mut c = Http::connect(&node.addr());
        c.send_raw(format!("GET /health {version}\r\nHost: x\r\n\r\n").as_bytes());
        let r = c.read().expect("an answer");
        assert_eq!(
            r.status,
            505,
            "{version}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
}

#[test]
fn existing_look_alike_room_names_are_renamed_once() {
    let db = TestDb::new();
    let mut c = db.client();
    // The schema as it was before room names had keys: every migration before 0010.
    c.batch_execute(
        "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sql");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sql") && n[..4] < *"0010")
        .collect();
    files.sort();
    for f in &files {
        c.batch_execute(&std::fs::read_to_string(dir.join(f)).unwrap())
            .unwrap();
        let version: i32 = f[..4].parse().unwrap();
        c.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[&version, &&f[5..f.len() - 4]],
        )
        .unwrap();
    }
    let owner = uuid::Uuid::new_v4();
    c.execute(
        "INSERT INTO users (id, username, email, password_hash, username_key)
         VALUES ($1, 'founder', 'f@example.com', 'x', 'founder')",
        &[&owner],
    )
    .unwrap();
    // Oldest first; the first of each look-alike group keeps its name.
    let rooms = [
        ("lobby", "public"),
        ("LOBBY", "public"),
        ("\u{4cf}\u{43e}\u{42c}\u{42c}\u{443}", "public"),
        ("LOBBY", "private"),
        ("\u{202e}lobby", "public"),
        ("\u{200b}\u{200b}", "public"),
        ("ops\u{7}team", "public"),
    ];
    let mut ids = Vec::new();
    for (i, (name, visibility)) in rooms.iter().enumerate() {
        let id = uuid::Uuid::new_v4();
        c.execute(
            "INSERT INTO rooms (id, name, created_by, visibility, created_at)
             VALUES ($1, $2, $3, $4, now() - make_interval(mins => $5))",
            &[&id, name, &owner, visibility, &(100 - i as i32)],
        )
        .unwrap();
        ids.push(id);
    }
    let node = start(&db);
    let name = |c: &mut postgres::Client, id: &uuid::Uuid| -> String {
        c.query_one("SELECT name FROM rooms WHERE id = $1", &[id])
            .unwrap()
            .get(0)
    };
    let got: Vec<String> = ids.iter().map(|id| name(&mut c, id)).collect();
    let blank = format!("room {}", &ids[5].simple().to_string()[..8]);
    assert_eq!(
        got,
        [
            "lobby",
            "LOBBY (2)",
            "\u{4cf}\u{43e}\u{42c}\u{42c}\u{443} (3)",
            "LOBBY",
            "lobby (4)",
            blank.as_str(),
            "opsteam",
        ]
    );
    // Every room has its key; the public ones are one name each from now on.
    let unkeyed: i64 = c
        .query_one("SELECT count(*) FROM rooms WHERE name_key IS NULL", &[])
        .unwrap()
        .get(0);
    assert_eq!(unkeyed, 0);
    let u = register(&node.addr(), "mig");
    let (s, b) = request(
        &node.addr(),
        "POST",
        "/rooms",
        Some(&u.token),
        Some(&json!({"name": "Lobby (2)"})),
    );
    assert_eq!(
        (s, b["code"].as_str()),
        (409, Some("room_name_taken")),
        "{b}"
    );
    // A second start renames nothing more.
    drop(node);
    let again = start(&db);
    let after: Vec<String> = ids.iter().map(|id| name(&mut c, id)).collect();
    assert_eq!(after, got);
    drop(again);
}
