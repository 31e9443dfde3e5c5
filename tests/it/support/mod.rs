//! Test helpers: a fresh database per test, in-process nodes on port 0, a raw HTTP
//! client and a WebSocket client. Everything talks to a real PostgreSQL over real sockets.
#![allow(dead_code)]

pub mod gate;
pub mod schema;

pub use gate::alone;

use chatd::ServerHandle;
use chatd::config::Config;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tungstenite::stream::MaybeTlsStream;

/// Base URL of the PostgreSQL server the tests use (no database name).
pub fn pg_base() -> String {
    std::env::var("TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A database of its own, dropped when the guard goes.
pub struct TestDb {
    /// Its name.
    pub name: String,
    /// Its URL.
    pub url: String,
    /// The server's URL without a database name.
    base: String,
    /// Keeps a test that measures time (`alone`) from running beside this one.
    _slot: gate::Shared,
}

impl TestDb {
    /// Creates an empty database with a unique name.
    pub fn new() -> TestDb {
        TestDb::on(&pg_base())
    }

    /// Creates an empty database with a unique name on the server at `base`.
    pub fn on(base: &str) -> TestDb {
        let slot = gate::Shared::take();
        let name = format!("chatd_t_{}", uuid::Uuid::new_v4().simple());
        let mut admin = postgres::Client::connect(&format!("{base}/postgres"), postgres::NoTls)
            .expect("PostgreSQL must be running for the tests (see README)");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        TestDb {
            url: format!("{base}/{name}"),
            base: base.to_string(),
            name,
            _slot: slot,
        }
    }

    /// A plain client on this database.
    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut admin) =
            postgres::Client::connect(&format!("{}/postgres", self.base), postgres::NoTls)
        {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// Test configuration: port 0, small pools, cheap argon2, fixed secrets (nodes of one
/// test accept each other's tokens).
pub fn config(url: &str) -> Config {
    let mut c = Config::default();
    c.server.listen = "127.0.0.1".into();
    c.server.port = 0;
    c.server.event_loops = 2;
    c.database.url = url.into();
    c.database.pool_size = 10;
    c.files.upload_workers = 1;
    c.database.db_workers = 2;
    c.database.export_workers = 1;
    c.database.writers = 2;
    c.auth.auth_workers = 1;
    c.auth.argon2_memory_kib = 1024;
    c.auth.argon2_iterations = 1;
    c.auth.access_secret = "test-access-secret-0123456789abcdef".into();
    c.auth.refresh_secret = "test-refresh-secret-0123456789abcdef".into();
    c.presence.heartbeat_secs = 1;
    c.presence.node_timeout_secs = 3;
    // Tests register many users from one address and send fast; the tests of these
    // limits set them.
    c.limits.register_per_ip_per_min = 0;
    c.limits.connections_per_ip = 0;
    c.limits.rooms_per_user_per_hour = 0;
    c.limits.invites_per_user_per_hour = 0;
    // Metrics on a port of their own (`Node::metrics`), as in production.
    c.metrics.listen = "127.0.0.1:0".into();
    c.websocket.max_events_per_sec = 0;
    c
}

/// The load-test configuration (abuse limits off) for nodes started as processes.
pub fn loadtest_config() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("loadtest/server.toml")
}

/// A node and the database it owns.
pub struct Node {
    /// The running server.
    pub handle: ServerHandle,
}

impl Node {
    /// `host:port`
    pub fn addr(&self) -> String {
        self.handle.url()
    }

    /// `host:port` of the metrics listener.
    pub fn metrics(&self) -> String {
        self.handle
            .metrics_addr
            .expect("the test config sets metrics.listen")
            .to_string()
    }

    /// Waits until /ready says 200.
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if request(&self.addr(), "GET", "/ready", None, None).0 == 200 {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("node never became ready");
    }
}

/// Starts a node with `tweak` applied to the test config.
pub fn start_with(db: &TestDb, tweak: impl FnOnce(&mut Config)) -> Node {
    start_on(&db.url, tweak)
}

/// Starts a node on the database at `url` (not a [`TestDb`]) with `tweak` applied.
pub fn start_on(url: &str, tweak: impl FnOnce(&mut Config)) -> Node {
    chatd::logger::init("warn");
    let mut c = config(url);
    tweak(&mut c);
    let node = Node {
        handle: chatd::run(c).expect("server starts"),
    };
    node.wait_ready();
    node
}

/// Starts a node with the test config.
pub fn start(db: &TestDb) -> Node {
    start_with(db, |_| {})
}

/// One HTTP response.
#[derive(Debug)]
pub struct Resp {
    /// Status.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Resp {
    /// The body as JSON (Null when empty or not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response from a buffered stream.
pub fn read_response(r: &mut BufReader<TcpStream>, head: bool) -> Option<Resp> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let status: u16 = line.split_whitespace().nth(1)?.parse().ok()?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (n, v) = h.split_once(':')?;
        headers.push((n.trim().to_lowercase(), v.trim().to_string()));
    }
    let len: usize = if head {
        0
    } else {
        headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0)
    };
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Resp {
        status,
        headers,
        body,
    })
}

/// A keep-alive HTTP connection.
pub struct Http {
    /// Reader over the socket.
    pub r: BufReader<TcpStream>,
}

impl Http {
    /// Connects.
    pub fn connect(addr: &str) -> Http {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Http {
            r: BufReader::new(s),
        }
    }

    /// Sends raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.r.get_mut().write_all(bytes).unwrap();
    }

    /// Reads the next response.
    pub fn read(&mut self) -> Option<Resp> {
        read_response(&mut self.r, false)
    }

    /// One request on this connection.
    pub fn call(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Resp {
        self.send_raw(&build(method, path, token, body, true));
        self.read().expect("a response")
    }
}

/// Serialises a request.
pub fn build(
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
    keep_alive: bool,
) -> Vec<u8> {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    if !keep_alive {
        req.push_str("Connection: close\r\n");
    }
    req.push_str("\r\n");
    req.push_str(&body);
    req.into_bytes()
}

/// One request on a fresh connection: (status, JSON body).
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let r = raw_request(addr, method, path, token, body);
    (r.status, r.json())
}

/// One request on a fresh connection, the whole response.
pub fn raw_request(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Resp {
    let mut c = Http::connect(addr);
    c.send_raw(&build(method, path, token, body, false));
    read_response(&mut c.r, method == "HEAD").expect("a response")
}

/// A registered user.
#[derive(Clone, Debug)]
pub struct User {
    /// Id.
    pub id: String,
    /// Name.
    pub username: String,
    /// Access token.
    pub token: String,
    /// Refresh token.
    pub refresh: String,
}

/// Registers a user with a unique name.
pub fn register(addr: &str, prefix: &str) -> User {
    let name = format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let (status, body) = request(
        addr,
        "POST",
        "/auth/register",
        None,
        Some(
            &json!({ "username": name, "email": format!("{name}@example.com"), "password": "password123" }),
        ),
    );
    assert_eq!(status, 201, "{body}");
    User {
        id: body["user"]["id"].as_str().unwrap().into(),
        username: name,
        token: body["tokens"]["accessToken"].as_str().unwrap().into(),
        refresh: body["tokens"]["refreshToken"].as_str().unwrap().into(),
    }
}

/// Creates a room (its creator is a member); returns its id.
pub fn create_room(addr: &str, token: &str) -> String {
    let name = format!("room-{}", uuid::Uuid::new_v4().simple());
    let (status, body) = request(
        addr,
        "POST",
        "/rooms",
        Some(token),
        Some(&json!({ "name": name })),
    );
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_string()
}

/// Posts a message over REST on `c` and asserts it was stored; returns the message.
pub fn post_message(c: &mut Http, token: &str, room: &str, content: &str) -> Value {
    let r = c.call(
        "POST",
        &format!("/rooms/{room}/messages"),
        Some(token),
        Some(&json!({ "content": content })),
    );
    assert_eq!(r.status, 201, "{:?}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// The room's last seq now (0 when empty), read as a member through its history.
/// Membership changes are entries of the stream too (system entries), so a test that
/// counts seqs starts from here.
pub fn room_head(addr: &str, token: &str, room: &str) -> i64 {
    let (status, body) = request(
        addr,
        "GET",
        &format!("/rooms/{room}/messages?limit=1"),
        Some(token),
        None,
    );
    assert_eq!(status, 200, "{body}");
    body["messages"][0]["seq"].as_i64().unwrap_or(0)
}

/// Joins a room over REST.
pub fn join_room(addr: &str, token: &str, room: &str) {
    let (status, body) = request(
        addr,
        "POST",
        &format!("/rooms/{room}/join"),
        Some(token),
        None,
    );
    assert_eq!(status, 201, "{body}");
}

/// A WebSocket client.
pub struct Ws {
    /// The socket.
    pub ws: tungstenite::WebSocket<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    /// Connects with the token in the query string.
    pub fn connect(addr: &str, token: &str) -> Ws {
        let (ws, _) =
            tungstenite::connect(format!("ws://{addr}/ws?token={token}")).expect("upgrade");
        if let MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
        }
        Ws { ws }
    }

    /// Connects with a tiny receive buffer set before the handshake (a client that
    /// reads slowly fills up fast).
    pub fn connect_small_rcvbuf(addr: &str, token: &str) -> Ws {
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        let sa: std::net::SocketAddr = addr.parse().unwrap();
        sock.connect(&sa.into()).unwrap();
        let stream: TcpStream = sock.into();
        let (ws, _) = tungstenite::client(
            format!("ws://{addr}/ws?token={token}"),
            MaybeTlsStream::Plain(stream),
        )
        .expect("upgrade");
        if let MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
        }
        Ws { ws }
    }

    /// Sends an event.
    pub fn send(&mut self, event: &str, data: Value) {
        self.ws
            .send(tungstenite::Message::text(
                json!({ "event": event, "data": data }).to_string(),
            ))
            .unwrap();
    }

    /// Sends a raw text frame.
    pub fn send_text(&mut self, text: &str) {
        self.ws
            .send(tungstenite::Message::text(text.to_string()))
            .unwrap();
    }

    /// The next event frame within `timeout`, as JSON; `None` on timeout.
    pub fn next_within(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.ws.read() {
                Ok(tungstenite::Message::Text(t)) => {
                    return Some(serde_json::from_str(t.as_str()).unwrap());
                }
                Ok(tungstenite::Message::Close(f)) => {
                    return Some(
                        json!({ "event": "__close", "data": { "code": f.map(|f| u16::from(f.code)) } }),
                    );
                }
                Ok(_) => continue,
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue;
                }
                Err(tungstenite::Error::ConnectionClosed)
                | Err(tungstenite::Error::AlreadyClosed) => {
                    return Some(json!({ "event": "__closed", "data": null }));
                }
                Err(e) => return Some(json!({ "event": "__error", "data": e.to_string() })),
            }
        }
        None
    }

    /// The next `name` frame whose data satisfies `pred` (others are skipped), within 10 s.
    pub fn expect_where(&mut self, name: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let data = self.expect(name);
            if pred(&data) {
                return data;
            }
        }
        panic!("no matching {name} within 10 s");
    }

    /// The next frame whose event is `name` (others are skipped), within 10 s.
    pub fn expect(&mut self, name: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(v) = self.next_within(Duration::from_millis(500)) {
                if v["event"] == name {
                    return v["data"].clone();
                }
                if v["event"].as_str().is_some_and(|e| e.starts_with("__")) {
                    panic!("socket ended while waiting for {name}: {v}");
                }
            }
        }
        panic!("no {name} within 10 s");
    }

    /// The very next frame, which must be a `name` event (any other frame, a close or
    /// ten quiet seconds fail): for the tests whose point is that nothing else arrives.
    pub fn expect_next(&mut self, name: &str) -> Value {
        let v = self
            .next_within(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("no frame within 10 s, expected {name}"));
        assert_eq!(v["event"], name, "expected {name} next, got {v}");
        v["data"].clone()
    }

    /// Every frame this socket gets until it has been quiet for `quiet` (at most 10 s).
    pub fn drain(&mut self, quiet: Duration) -> Vec<Value> {
        let mut frames = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match self.next_within(quiet) {
                Some(v) => frames.push(v),
                None => break,
            }
        }
        frames
    }

    /// Asserts that no frame at all arrives for `window` (every frame of it is read).
    pub fn assert_silent(&mut self, window: Duration, what: &str) {
        let deadline = Instant::now() + window;
        while Instant::now() < deadline {
            if let Some(v) = self.next_within(deadline.saturating_duration_since(Instant::now())) {
                panic!("{what}: got {v}");
            }
        }
    }

    /// Joins a room and waits for `joined_room`; returns the `history` data if any.
    pub fn join(&mut self, room: &str, last_seen: Option<i64>) -> Option<Value> {
        self.send(
            "join_room",
            json!({ "room_id": room, "last_seen_seq": last_seen }),
        );
        let mut history = None;
        loop {
            let v = self
                .next_within(Duration::from_secs(10))
                .expect("join answered");
            match v["event"].as_str() {
                Some("history") => history = Some(v["data"].clone()),
                Some("joined_room") => return history,
                Some("error") => panic!("join failed: {v}"),
                _ => {}
            }
        }
    }

    /// Collects message seqs of `room` until `n` were seen or `timeout` passed.
    pub fn collect_seqs(&mut self, n: usize, timeout: Duration) -> Vec<i64> {
        let mut seqs = Vec::new();
        let deadline = Instant::now() + timeout;
        while seqs.len() < n && Instant::now() < deadline {
            let Some(v) = self.next_within(Duration::from_millis(200)) else {
                continue;
            };
            seqs.extend(message_seqs(&v));
        }
        seqs
    }
}

/// Seqs carried by a `new_message`, `new_message_batch` or `history` frame.
pub fn message_seqs(v: &Value) -> Vec<i64> {
    match v["event"].as_str() {
        Some("new_message") => vec![v["data"]["seq"].as_i64().unwrap()],
        Some("new_message_batch") => v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["seq"].as_i64().unwrap())
            .collect(),
        Some("history") => v["data"]["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["seq"].as_i64().unwrap())
            .collect(),
        _ => Vec::new(),
    }
}

/// Asserts `seqs` is exactly `from..=to` in order.
pub fn assert_exact(seqs: &[i64], from: i64, to: i64) {
    let expected: Vec<i64> = (from..=to).collect();
    if seqs != expected.as_slice() {
        let dup = seqs.len() - {
            let mut s = seqs.to_vec();
            s.sort();
            s.dedup();
            s.len()
        };
        panic!(
            "expected seq {from}..={to} exactly once in order; got {} seqs ({dup} duplicates), first {:?}, last {:?}",
            seqs.len(),
            seqs.first(),
            seqs.last()
        );
    }
}

/// The chatd binary under test: `$CHATD_BIN` (the release build in CI), else the one
/// cargo built for this test run.
pub fn chatd_bin() -> String {
    std::env::var("CHATD_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_chatd").to_string())
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A chatd process started the way operators start it: environment variables only.
pub struct Process {
    /// The child.
    pub child: std::process::Child,
    /// `127.0.0.1:port`
    pub addr: String,
}

impl Process {
    /// Starts the binary on a free port against `db` with the given secrets.
    pub fn start(db: &TestDb, node_id: &str) -> Process {
        Process::start_with(db, node_id, "warn", std::process::Stdio::inherit(), None)
    }

    /// Same, with a log level, where its log (stderr) goes and a config file.
    pub fn start_with(
        db: &TestDb,
        node_id: &str,
        level: &str,
        stderr: std::process::Stdio,
        config: Option<&std::path::Path>,
    ) -> Process {
        let port = free_port();
        let mut cmd = std::process::Command::new(chatd_bin());
        cmd.env(
            "CHATD_CONFIG",
            config.map_or_else(loadtest_config, |c| c.to_path_buf()),
        );
        let child = cmd
            .env("DATABASE_URL", &db.url)
            .env("PORT", port.to_string())
            .env(
                "JWT_ACCESS_SECRET",
                "acceptance-access-secret-0123456789abcdef",
            )
            .env(
                "JWT_REFRESH_SECRET",
                "acceptance-refresh-secret-0123456789abcdef",
            )
            .env("CHATD_NODE_ID", node_id)
            .env("RUST_LOG", level)
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("chatd binary runs");
        let p = Process {
            child,
            addr: format!("127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if TcpStream::connect(&p.addr).is_ok()
                && request(&p.addr, "GET", "/ready", None, None).0 == 200
            {
                return p;
            }
            assert!(Instant::now() < deadline, "chatd did not become ready");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM and returns the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
