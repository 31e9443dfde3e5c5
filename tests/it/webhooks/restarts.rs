//! Webhooks across failures of the machinery itself: a node SIGKILLed in the middle of
//! dispatching, and PostgreSQL restarted. PostgreSQL here is a throwaway server of this
//! test (deploy/pg.sh in a directory of its own, on a port of its own), never the one
//! the other tests share.

use super::receiver::{Fault, Receiver, SECRET};
use super::{delivered_seqs, heads, wait_for};
use crate::support::*;
use serde_json::json;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

/// A PostgreSQL server of this test's own.
struct OwnPg {
    dir: String,
    port: u16,
    url: String,
}

impl OwnPg {
    fn sh(&self, args: &[&str]) -> String {
        let root = env!("CARGO_MANIFEST_DIR");
        let out = Command::new("bash")
            .arg(format!("{root}/deploy/pg.sh"))
            .args(args)
            .env("CHATD_PGDIR", format!("{}/pg", self.dir))
            .env("PGPORT", self.port.to_string())
            .env_remove("PGHOST")
            .env_remove("PGUSER")
            .output()
            .expect("deploy/pg.sh runs");
        assert!(
            out.status.success(),
            "deploy/pg.sh {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn start() -> OwnPg {
        let dir = format!("/tmp/chatd-webhooks-{}", uuid::Uuid::new_v4().simple());
        std::fs::create_dir_all(&dir).unwrap();
        // As root the server runs as the postgres user, which must reach the directory.
        let _ = Command::new("chmod").args(["755", &dir]).status();
        let mut pg = OwnPg {
            dir,
            port: free_port(),
            url: String::new(),
        };
        pg.url = pg.sh(&["ensure"]);
        assert!(pg.url.ends_with(&format!(":{}", pg.port)), "{}", pg.url);
        pg
    }
}

impl Drop for OwnPg {
    fn drop(&mut self) {
        let root = env!("CARGO_MANIFEST_DIR");
        let _ = Command::new("bash")
            .arg(format!("{root}/deploy/pg.sh"))
            .arg("stop")
            .env("CHATD_PGDIR", format!("{}/pg", self.dir))
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Posts `n` messages to each room through `addr`, as a client does: a 503 (the node's
/// pool still meeting connections the restart broke) is tried again, with the same
/// `client_msg_id`.
fn post_all(addr: &str, token: &str, rooms: &[String], n: usize, tag: &str) {
    let mut http = Http::connect(addr);
    for i in 0..n {
        for room in rooms {
            let body = json!({"content": format!("{tag}{i}"), "client_msg_id": format!("{tag}{i}-{room}")});
            let path = format!("/rooms/{room}/messages");
            let mut tries = 0;
            loop {
                let r = http.call("POST", &path, Some(token), Some(&body));
                if r.status == 201 {
                    break;
                }
                tries += 1;
                assert!(
                    r.status == 503 && tries < 20,
                    "{}: {:?}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                );
                std::thread::sleep(Duration::from_millis(200));
                http = Http::connect(addr);
            }
        }
    }
}

#[test]
fn no_event_is_lost_across_a_node_sigkill_and_a_postgresql_restart() {
    let pg = OwnPg::start();
    let db = TestDb::on(&pg.url);
    // Every 7th request fails; the receiver answers slowly enough that a kill lands
    // while events are in flight.
    let r = Receiver::start(|n, _| {
        std::thread::sleep(Duration::from_millis(5));
        if n % 7 == 3 {
            Fault::Status500
        } else {
            Fault::None
        }
    });
    let cfg = format!("{}/chatd.toml", pg.dir);
    let base = std::fs::read_to_string(loadtest_config()).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "{base}\n[[webhooks]]\nname = \"kill\"\nurl = \"{}\"\nsecret = \"{SECRET}\"\n\
             events = [\"*\"]\ntimeout_ms = 500\nretry_base_ms = 50\nconcurrency = 2\n",
            r.url
        ),
    )
    .unwrap();
    let cfg = std::path::Path::new(&cfg);
    let mut one = Process::start_with(&db, "wh-1", "warn", Stdio::null(), Some(cfg));
    let alice = register(&one.addr, "whk");
    let rooms: Vec<String> = (0..2)
        .map(|_| create_room(&one.addr, &alice.token))
        .collect();
    post_all(&one.addr, &alice.token, &rooms, 40, "a");
    wait_for(30, "some deliveries before the kill", || {
        r.delivered().len() >= 10
    });
    one.child.kill().unwrap(); // SIGKILL
    one.child.wait().unwrap();
    let before_kill = r.delivered().len();

    let two = Process::start_with(&db, "wh-2", "warn", Stdio::null(), Some(cfg));
    post_all(&two.addr, &alice.token, &rooms, 20, "b");
    wait_for(30, "deliveries after the kill", || {
        r.delivered().len() > before_kill + 10
    });

    // PostgreSQL goes away and comes back on the same port.
    pg.sh(&["stop"]);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(pg.sh(&["ensure"]), pg.url);
    wait_for(60, "the node ready again", || {
        request(&two.addr, "GET", "/ready", None, None).0 == 200
    });
    post_all(&two.addr, &alice.token, &rooms, 20, "c");

    let want = heads(&db.url, &rooms);
    wait_for(90, "every event delivered", || {
        let (seqs, _) = delivered_seqs(&r.delivered());
        want.iter()
            .all(|(room, last)| seqs.get(room).is_some_and(|s| s.len() as i64 == *last))
    });
    let (seqs, dups) = delivered_seqs(&r.delivered());
    for (room, last) in &want {
        assert_eq!(seqs[room], (1..=*last).collect::<Vec<_>>(), "room {room}");
    }
    assert_eq!(r.bad.load(SeqCst), 0, "every signature valid");
    assert!(r.fault_count(Fault::Status500) > 0);
    eprintln!("webhooks across a kill and a restart: {dups} redeliveries (same id and body)");
}
