//! Reads from a hot standby: a real primary and a real streaming standby (started by
//! deploy/pg.sh in a directory of their own, removed afterwards). With the standby's
//! replay paused, every history page, join history and search still shows exactly what
//! the primary holds, and /metrics says how often the primary had to answer instead.

use crate::support::*;
use serde_json::{Value, json};
use std::process::Command;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// A primary and its standby, each a PostgreSQL server of its own.
pub struct Pair {
    /// Their directory.
    pub dir: String,
    /// The primary's URL (no database).
    pub primary: String,
    /// The standby's URL (no database).
    pub standby: String,
}

/// Runs deploy/pg.sh with the pair's directory; its output.
pub fn pg_sh(dir: &str, port: Option<u16>, args: &[&str]) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut cmd = Command::new("bash");
    cmd.arg(format!("{root}/deploy/pg.sh"))
        .args(args)
        .env("CHATD_PGDIR", format!("{dir}/primary"))
        .env_remove("PGHOST")
        .env_remove("PGUSER");
    match port {
        Some(p) => cmd.env("PGPORT", p.to_string()),
        None => cmd.env_remove("PGPORT"),
    };
    let out = cmd.output().expect("deploy/pg.sh runs");
    assert!(
        out.status.success(),
        "deploy/pg.sh {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Pair {
    /// Starts a primary and its streaming standby.
    pub fn start() -> Pair {
        let dir = format!("/tmp/chatd-replicas-{}", uuid::Uuid::new_v4().simple());
        std::fs::create_dir_all(&dir).unwrap();
        // As root the servers run as the postgres user, which must reach the directory.
        let _ = Command::new("chmod").args(["755", &dir]).status();
        let primary = pg_sh(&dir, Some(free_port()), &["ensure"]);
        let standby = pg_sh(&dir, None, &["standby", &primary]);
        Pair {
            dir,
            primary,
            standby,
        }
    }

    /// Runs `q` on database `db` of server `url`.
    pub fn sql(url: &str, db: &str, q: &str) -> Vec<postgres::Row> {
        let mut c = postgres::Client::connect(&format!("{url}/{db}"), postgres::NoTls).unwrap();
        c.query(q, &[]).unwrap()
    }

    /// Waits until the standby has replayed everything the primary has committed.
    pub fn caught_up(&self) {
        let lsn: String = Pair::sql(
            &self.primary,
            "postgres",
            "SELECT pg_current_wal_lsn()::text",
        )[0]
        .get(0);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let q = format!("SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn");
            if Pair::sql(&self.standby, "postgres", &q)[0].get::<_, bool>(0) {
                return;
            }
            assert!(Instant::now() < deadline, "the standby never caught up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let root = env!("CARGO_MANIFEST_DIR");
        for args in [vec!["standby-stop", self.primary.as_str()], vec!["stop"]] {
            let _ = Command::new("bash")
                .arg(format!("{root}/deploy/pg.sh"))
                .args(&args)
                .env("CHATD_PGDIR", format!("{}/primary", self.dir))
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn seqs(page: &Value) -> Vec<i64> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect()
}

fn page(addr: &str, token: &str, room: &str, query: &str) -> Value {
    let (status, body) = request(
        addr,
        "GET",
        &format!("/rooms/{room}/messages{query}"),
        Some(token),
        None,
    );
    assert_eq!(status, 200, "{body}");
    body
}

/// Every read a standby can serve, with the standby's replay paused: exact answers,
/// fallbacks counted; with replay resumed, the standby answers again.
#[test]
fn a_lagging_standby_never_shows_a_gap_or_an_old_page() {
    let pair = Pair::start();
    let db = "chatd_replicas";
    Pair::sql(&pair.primary, "postgres", &format!("CREATE DATABASE {db}"));
    let node = start_on(&format!("{}/{db}", pair.primary), |c| {
        c.database.read_url = vec![format!("{}/{db}", pair.standby)];
        // Every page goes to the database, not to the node's cache.
        c.http.history_cache_mb = 0;
    });
    let addr = node.addr();
    let m = node.handle.metrics.clone();
    let u = register(&addr, "rp");
    let room = create_room(&addr, &u.token);
    // Two members the standby will still hold as members after they are removed.
    let (kicked, banned) = (register(&addr, "rpk"), register(&addr, "rpb"));
    for x in [&kicked, &banned] {
        join_room(&addr, &x.token, &room);
    }
    let mut h = Http::connect(&addr);
    let first = post_message(&mut h, &u.token, &room, "first words")["seq"]
        .as_i64()
        .unwrap();
    for i in 1..30 {
        post_message(&mut h, &u.token, &room, &format!("message {i}"));
    }
    pair.caught_up();
    for x in [&kicked, &banned] {
        assert_eq!(
            seqs(&page(&addr, &x.token, &room, "?limit=1")),
            vec![first + 29],
            "a member reads the standby's pages"
        );
    }

    let before = m.replica_reads.load(Relaxed);
    let p = page(&addr, &u.token, &room, "?limit=10");
    assert_eq!(
        seqs(&p),
        ((first + 20)..=(first + 29)).rev().collect::<Vec<_>>()
    );
    assert!(
        m.replica_reads.load(Relaxed) > before,
        "a page the standby holds is read there"
    );

    // The standby stops replaying; the primary moves on: new messages, an edit and a
    // deletion of messages the standby holds in their old state.
    Pair::sql(&pair.standby, "postgres", "SELECT pg_wal_replay_pause()");
    for i in 30..45 {
        post_message(&mut h, &u.token, &room, &format!("message {i} zebra"));
    }
    let edited = p["messages"][5]["id"].as_i64().unwrap();
    let r = h.call(
        "PATCH",
        &format!("/rooms/{room}/messages/{edited}"),
        Some(&u.token),
        Some(&json!({ "content": "rewritten" })),
    );
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let gone = p["messages"][6]["id"].as_i64().unwrap();
    let r = h.call(
        "DELETE",
        &format!("/rooms/{room}/messages/{gone}"),
        Some(&u.token),
        None,
    );
    assert!(r.status == 200 || r.status == 204, "{}", r.status);
    // A kick and a ban the standby has not replayed: refused at once all the same (the
    // membership is read on the primary), on every read the standby could serve.
    for (x, act) in [(&kicked, "kick"), (&banned, "ban")] {
        let path = format!("/rooms/{room}/members/{}/{act}", x.id);
        let r = h.call("POST", &path, Some(&u.token), None);
        assert!(r.status < 300, "{act}: {}", r.status);
        for q in [
            format!("/rooms/{room}/messages?limit=5"),
            format!("/rooms/{room}/messages?limit=5&cursor={}", first + 20),
            format!("/rooms/{room}/search?q=zebra"),
        ] {
            let (s, b) = request(&addr, "GET", &q, Some(&x.token), None);
            assert_eq!(
                (s, b["code"].as_str()),
                (403, Some("not_member")),
                "{act}: GET {q}: {b}"
            );
        }
        let mut w = Ws::connect(&addr, &x.token);
        w.send(
            "join_room",
            json!({"room_id": room, "last_seen_seq": first}),
        );
        // Subscribing needs a membership: refused as for any outsider.
        assert_eq!(w.expect_next("error")["code"], "not_member", "{act}");
    }
    let (s, b) = request(
        &addr,
        "GET",
        &format!("/rooms/{room}/messages?limit=5"),
        Some(&u.token),
        None,
    );
    assert_eq!(s, 200, "{b}");
    let head = room_head(&addr, &u.token, &room);
    let fallbacks = m.replica_fallbacks.load(Relaxed);

    // History pages: the newest one and the one holding the changed messages.
    let newest = page(&addr, &u.token, &room, "?limit=20");
    assert_eq!(
        seqs(&newest),
        ((head - 19)..=head).rev().collect::<Vec<_>>()
    );
    let older = page(
        &addr,
        &u.token,
        &room,
        &format!("?limit=10&cursor={}", first + 30),
    );
    assert_eq!(
        seqs(&older),
        ((first + 20)..=(first + 29)).rev().collect::<Vec<_>>()
    );
    let by_id = |id: i64| {
        older["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"].as_i64() == Some(id))
            .cloned()
            .unwrap()
    };
    assert_eq!(
        by_id(edited)["content"],
        "rewritten",
        "an edit the standby lacks"
    );
    assert!(
        by_id(gone)["deleted_at"].is_string(),
        "a deletion the standby lacks"
    );

    // A socket joining from an old position gets everything up to the head.
    let mut w = Ws::connect(&addr, &u.token);
    let history = w.join(&room, Some(first + 10)).expect("history");
    let got: Vec<i64> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(got.first(), Some(&(first + 11)));
    assert_eq!(got.last(), Some(&head), "join history reaches the head");

    // A search finds what only the primary has (once the indexer, off the send path,
    // has indexed it there).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, found) = request(&addr, "GET", "/me/search?q=zebra", Some(&u.token), None);
        assert_eq!(status, 200, "{found}");
        if found["messages"].as_array().unwrap().len() == 15 {
            break;
        }
        assert!(Instant::now() < deadline, "{found}");
        std::thread::sleep(Duration::from_millis(50));
    }

    assert!(
        m.replica_fallbacks.load(Relaxed) >= fallbacks + 3,
        "the lagging standby's refusals are counted"
    );
    let (_, metrics) = raw_metrics(&node.metrics());
    assert!(
        metrics.contains("chatd_replica_fallbacks_total "),
        "{metrics}"
    );

    // Replay resumes: the standby serves the same pages again.
    Pair::sql(&pair.standby, "postgres", "SELECT pg_wal_replay_resume()");
    pair.caught_up();
    let reads = m.replica_reads.load(Relaxed);
    assert_eq!(page(&addr, &u.token, &room, "?limit=20"), newest);
    assert!(m.replica_reads.load(Relaxed) > reads);

    // The standby goes away: reads go to the primary, nothing fails.
    pg_sh(&pair.dir, None, &["standby-stop", &pair.primary]);
    let errors = m.replica_errors.load(Relaxed);
    assert_eq!(page(&addr, &u.token, &room, "?limit=20"), newest);
    assert!(m.replica_errors.load(Relaxed) > errors);
    drop(node);
}

fn raw_metrics(addr: &str) -> (u16, String) {
    let mut c = Http::connect(addr);
    let r = c.call("GET", "/metrics", None, None);
    (r.status, String::from_utf8_lossy(&r.body).into_owned())
}
