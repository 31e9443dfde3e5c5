//! `deploy/cluster.sh`: three nodes behind nginx; cross-node delivery through nginx; a
//! node stopped mid-stream whose clients reconnect through nginx and recover every
//! message exactly once; `down` leaves nothing behind. Needs nginx (`.ci/run` installs it).

use crate::support::*;
use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs cluster.sh with the test's settings; `down` on drop.
struct Cluster {
    env: Vec<(String, String)>,
}

impl Cluster {
    fn sh(&self, args: &[&str]) -> bool {
        let root = env!("CARGO_MANIFEST_DIR");
        Command::new("bash")
            .arg(format!("{root}/deploy/cluster.sh"))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.sh(&["down"]);
    }
}

/// Follows a room until `total` messages were seen, reconnecting through `via` with
/// `last_seen_seq` whenever its socket ends. Returns every seq received, in order.
fn follow(
    first: String,
    via: String,
    token: String,
    room: String,
    total: i64,
) -> std::thread::JoinHandle<(Vec<i64>, usize)> {
    std::thread::spawn(move || {
        let mut seqs: Vec<i64> = Vec::new();
        let mut reconnects = 0;
        let mut addr = first;
        let deadline = Instant::now() + Duration::from_secs(90);
        while (seqs.len() as i64) < total && Instant::now() < deadline {
            let Ok((ws, _)) = tungstenite::connect(format!("ws://{addr}/ws?token={token}")) else {
                std::thread::sleep(Duration::from_millis(200));
                addr = via.clone();
                continue;
            };
            if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
                s.set_read_timeout(Some(Duration::from_millis(200)))
                    .unwrap();
            }
            let mut w = Ws { ws };
            let last = seqs.last().copied().unwrap_or(0);
            w.send("join_room", json!({"room_id": room, "last_seen_seq": last}));
            loop {
                if (seqs.len() as i64) >= total || Instant::now() > deadline {
                    break;
                }
                let Some(v) = w.next_within(Duration::from_millis(500)) else {
                    continue;
                };
                if v["event"].as_str().is_some_and(|e| e.starts_with("__")) {
                    break;
                }
                seqs.extend(message_seqs(&v));
            }
            reconnects += 1;
            addr = via.clone();
        }
        (seqs, reconnects - 1)
    })
}

/// cluster.sh keeps its state in one directory: one cluster at a time.
static ONE_CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn nginx_present() {
    assert!(
        Command::new("sh")
            .args(["-c", "command -v nginx"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false),
        "nginx is needed for this test: apt-get install -y nginx"
    );
}

fn cluster_for(db: &TestDb, nginx_port: u16, base: u16) -> Cluster {
    Cluster {
        env: vec![
            ("DATABASE_URL".into(), db.url.clone()),
            ("CLUSTER_PORT".into(), nginx_port.to_string()),
            ("CLUSTER_BASE_PORT".into(), base.to_string()),
            ("CHATD_BIN".into(), chatd_bin()),
            (
                "CHATD_CONFIG".into(),
                loadtest_config().to_string_lossy().into_owned(),
            ),
        ],
    }
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[test]
fn three_nodes_behind_nginx_survive_a_node_stop() {
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    nginx_present();
    let db = TestDb::new();
    let nginx_port = free_port();
    let base = 3600 + (std::process::id() % 200) as u16 * 4;
    let cluster = cluster_for(&db, nginx_port, base);
    assert!(cluster.sh(&["up", "3"]), "cluster.sh up 3 failed");
    let nginx = format!("127.0.0.1:{nginx_port}");
    let node = |k: u16| format!("127.0.0.1:{}", base + k);
    assert_eq!(request(&nginx, "GET", "/health", None, None).0, 200);

    let u = register(&nginx, "clu");
    let room = create_room(&nginx, &u.token);
    let total = 400i64;
    // One follower held by each node directly, two more placed by nginx.
    let mut followers = Vec::new();
    for first in [node(1), node(2), node(3), nginx.clone(), nginx.clone()] {
        followers.push(follow(
            first,
            nginx.clone(),
            u.token.clone(),
            room.clone(),
            total,
        ));
    }
    std::thread::sleep(Duration::from_millis(500));

    // The stream comes from node 1; node 2 is stopped in the middle of it.
    let mut sender = Ws::connect(&node(1), &u.token);
    for i in 0..total {
        sender.send(
            "send_message",
            json!({"room_id": room, "content": format!("c{i}"), "client_msg_id": format!("c{i}")}),
        );
        if i == total / 3 {
            assert!(cluster.sh(&["stop-node", "2"]), "stop-node 2 failed");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut acked = 0;
    while acked < total {
        let v = sender.next_within(Duration::from_secs(20)).expect("acks");
        if v["event"] == "message_ack" {
            acked += 1;
        }
    }
    let mut reconnected = 0;
    for f in followers {
        let (seqs, reconnects) = f.join().unwrap();
        assert_exact(&seqs, 1, total);
        reconnected += reconnects;
    }
    assert!(
        reconnected >= 1,
        "the stopped node's clients should have reconnected"
    );

    // Node 2 comes back; `down` then stops everything it started.
    assert!(cluster.sh(&["start-node", "2"]));
    assert_eq!(request(&node(2), "GET", "/ready", None, None).0, 200);
    assert!(cluster.sh(&["down"]));
    for port in [nginx_port, base + 1, base + 2, base + 3] {
        assert!(!port_open(port), "port {port} still open after down");
    }
    let state = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".local/cluster");
    if let Ok(dir) = std::fs::read_dir(&state) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if let (true, Ok(pid)) = (name.ends_with(".pid"), std::fs::read_to_string(e.path())) {
                let alive = std::path::Path::new(&format!("/proc/{}", pid.trim())).exists();
                assert!(!alive, "{name}: process {} still running", pid.trim());
            }
        }
    }
}

/// Sends `count` messages at `interval` through nginx; when its socket ends it
/// reconnects and re-sends everything not yet acknowledged, under the same
/// client_msg_id (so a message stored before the drop is not stored twice).
fn steady_sender(
    via: String,
    token: String,
    room: String,
    tag: usize,
    count: usize,
    interval: Duration,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut acked = std::collections::BTreeSet::new();
        let mut next = 0;
        let mut reconnects = 0;
        let deadline = Instant::now() + Duration::from_secs(120);
        while acked.len() < count && Instant::now() < deadline {
            let Ok((ws, _)) = tungstenite::connect(format!("ws://{via}/ws?token={token}")) else {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            };
            if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
                s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            }
            let mut w = Ws { ws };
            // Unacknowledged messages first, then the rest of the stream.
            let pending: Vec<usize> = (0..next).filter(|i| !acked.contains(i)).collect();
            let mut ok = true;
            for i in pending {
                ok &= w.ws.send(tungstenite::Message::text(json!({"event": "send_message", "data": {"room_id": room, "content": format!("s{tag}-{i}"), "client_msg_id": format!("s{tag}-{i}")}}).to_string())).is_ok();
            }
            let mut last_send = Instant::now();
            while ok && acked.len() < count && Instant::now() < deadline {
                if next < count && last_send.elapsed() >= interval {
                    let frame = json!({"event": "send_message", "data": {"room_id": room, "content": format!("s{tag}-{next}"), "client_msg_id": format!("s{tag}-{next}")}});
                    if w.ws
                        .send(tungstenite::Message::text(frame.to_string()))
                        .is_err()
                    {
                        break;
                    }
                    next += 1;
                    last_send = Instant::now();
                }
                match w.next_within(Duration::from_millis(5)) {
                    Some(v) if v["event"] == "message_ack" => {
                        let cmid = v["data"]["client_msg_id"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string();
                        if let Some(i) = cmid
                            .rsplit('-')
                            .next()
                            .and_then(|n| n.parse::<usize>().ok())
                        {
                            acked.insert(i);
                        }
                    }
                    Some(v) if v["event"].as_str().is_some_and(|e| e.starts_with("__")) => break,
                    _ => {}
                }
            }
            reconnects += 1;
        }
        assert_eq!(
            acked.len(),
            count,
            "sender {tag}: every message acknowledged"
        );
        reconnects - 1
    })
}

#[test]
fn rolling_restart_under_steady_delivery_loses_and_duplicates_nothing() {
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    nginx_present();
    let db = TestDb::new();
    let nginx_port = free_port();
    let base = 3800 + (std::process::id() % 200) as u16 * 4;
    let cluster = cluster_for(&db, nginx_port, base);
    assert!(cluster.sh(&["up", "3"]), "cluster.sh up 3 failed");
    let nginx = format!("127.0.0.1:{nginx_port}");
    let u = register(&nginx, "roll");
    let room = create_room(&nginx, &u.token);
    let (senders, per_sender) = (3usize, 300usize);
    let total = (senders * per_sender) as i64;
    let started = Instant::now();
    let followers: Vec<_> = (0..6)
        .map(|_| {
            follow(
                nginx.clone(),
                nginx.clone(),
                u.token.clone(),
                room.clone(),
                total,
            )
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let senders: Vec<_> = (0..senders)
        .map(|t| {
            steady_sender(
                nginx.clone(),
                u.token.clone(),
                room.clone(),
                t,
                per_sender,
                Duration::from_millis(20),
            )
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    assert!(cluster.sh(&["restart"]), "rolling restart failed");
    let sender_reconnects: usize = senders.into_iter().map(|s| s.join().unwrap()).sum();
    let mut receiver_reconnects = 0;
    for f in followers {
        let (seqs, reconnects) = f.join().unwrap();
        assert_exact(&seqs, 1, total);
        receiver_reconnects += reconnects;
    }
    let stored: i64 = db
        .client()
        .query_one("SELECT count(*) FROM messages", &[])
        .unwrap()
        .get(0);
    assert_eq!(stored, total, "each message stored exactly once");
    eprintln!(
        "rolling restart of 3 nodes: {total} messages from 3 senders to 6 receivers in {:.1} s; sender reconnects {sender_reconnects}, receiver reconnects {receiver_reconnects}; lost 0, duplicated 0, out of order 0",
        started.elapsed().as_secs_f64()
    );
    assert!(receiver_reconnects >= 1);
}

/// A connection to `addr` from the loopback address `src` (127.0.0.0/8 is all this
/// machine's: a client can take any of it as its source).
fn connect_from(src: &str, addr: &str) -> std::net::TcpStream {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let from: std::net::SocketAddr = format!("{src}:0").parse().unwrap();
    s.bind(&from.into()).unwrap();
    let to: std::net::SocketAddr = addr.parse().unwrap();
    s.connect(&to.into()).unwrap();
    let s: std::net::TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// A login from `src` through nginx, with an `X-Forwarded-For` the client made up.
fn login_from(src: &str, nginx: &str, email: &str, password: &str, spoof: &str) -> u16 {
    use std::io::Write;
    let body = json!({"email": email, "password": password}).to_string();
    let mut s = connect_from(src, nginx);
    write!(
        s,
        "POST /auth/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Forwarded-For: {spoof}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    read_response(&mut std::io::BufReader::new(s), false)
        .expect("an answer")
        .status
}

/// A WebSocket opened from `src` through nginx: its handshake status.
fn socket_from(
    src: &str,
    nginx: &str,
    token: &str,
) -> (u16, Option<tungstenite::WebSocket<std::net::TcpStream>>) {
    let s = connect_from(src, nginx);
    match tungstenite::client(format!("ws://{nginx}/ws?token={token}"), s) {
        Ok((ws, r)) => (r.status().as_u16(), Some(ws)),
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r))) => {
            (r.status().as_u16(), None)
        }
        Err(e) => panic!("handshake from {src}: {e}"),
    }
}

#[test]
fn behind_nginx_each_client_address_is_limited_on_its_own() {
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    nginx_present();
    let db = TestDb::new();
    let nginx_port = free_port();
    let base = 3600 + (std::process::id() % 200) as u16 * 4;
    // The shipped limits (chat.toml's), none of the load test's exemptions.
    let cfg = std::env::temp_dir().join(format!(
        "chatd-limits-{}.toml",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&cfg, "[auth]\naccess_ttl_secs = 3600\n").unwrap();
    let mut cluster = cluster_for(&db, nginx_port, base);
    cluster.env.retain(|(k, _)| k != "CHATD_CONFIG");
    cluster
        .env
        .push(("CHATD_CONFIG".into(), cfg.to_string_lossy().into_owned()));
    cluster
        .env
        .push(("CLUSTER_CONN_PER_ADDR".into(), "4".into()));
    let up = cluster.sh(&["up", "1"]);
    let _ = std::fs::remove_file(&cfg);
    assert!(up, "cluster.sh up 1 failed");
    let nginx = format!("127.0.0.1:{nginx_port}");
    let victim = register(&nginx, "vic");
    let email = format!("{}@example.com", victim.username);

    // A guesser at 127.0.0.2 spends the (account, address) allowance, whatever
    // X-Forwarded-For it sends; the owner at 127.0.0.3 still logs in.
    for i in 0..10 {
        let s = login_from(
            "127.0.0.2",
            &nginx,
            &email,
            "wrong-password",
            &format!("10.9.9.{i}"),
        );
        assert_eq!(s, 401, "guess {i}");
    }
    assert_eq!(
        login_from("127.0.0.2", &nginx, &email, "wrong-password", "10.9.9.99"),
        429
    );
    assert_eq!(
        login_from("127.0.0.3", &nginx, &email, "password123", "127.0.0.2"),
        201
    );

    // Connections: four sockets from 127.0.0.2, the fifth is refused; 127.0.0.3 still
    // connects.
    let mut held = Vec::new();
    for i in 0..4 {
        let (s, ws) = socket_from("127.0.0.2", &nginx, &victim.token);
        assert_eq!(s, 101, "socket {i}");
        held.push(ws);
    }
    assert_eq!(socket_from("127.0.0.2", &nginx, &victim.token).0, 429);
    assert_eq!(socket_from("127.0.0.3", &nginx, &victim.token).0, 101);
    drop(held);
    assert!(cluster.sh(&["down"]));
}
