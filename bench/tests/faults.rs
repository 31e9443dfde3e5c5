//! chat-bench's verdict against a server that misbehaves on purpose: chatd behind
//! `faultproxy`, once per fault. A run through the proxy without a fault must pass;
//! each fault must turn the verdict into FAIL (exit 1) with its own counter.
//!
//! Needs a chatd binary ($CHATD_BIN, default target/release/chatd: build it with
//! `cargo build --release --bin chatd`) and PostgreSQL ($TEST_PG_URL, default
//! postgres://postgres@127.0.0.1:5432): the test creates and drops a database of its
//! own and starts chatd on a free port. It fails (does not skip) when either is
//! missing.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn pg_base() -> String {
    std::env::var("TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

fn chatd_bin() -> PathBuf {
    let p = std::env::var_os("CHATD_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/chatd"),
        PathBuf::from,
    );
    assert!(
        p.is_file(),
        "chatd binary not found at {} (set CHATD_BIN, or build it: cargo build --release --bin chatd)",
        p.display()
    );
    p
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A chatd on its own database; both go away with the guard.
struct Server {
    child: Child,
    port: u16,
    db: String,
    log: PathBuf,
}

impl Server {
    fn start() -> Server {
        let bin = chatd_bin();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let db = format!("chatbench_faults_{}_{nanos}", std::process::id());
        let mut admin =
            postgres::Client::connect(&format!("{}/postgres", pg_base()), postgres::NoTls)
                .unwrap_or_else(|e| panic!("PostgreSQL at {} is needed: {e}", pg_base()));
        admin
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .expect("create the test database");
        let port = free_port();
        let log = std::env::temp_dir().join(format!("{db}.log"));
        let child = Command::new(&bin)
            .env("DATABASE_URL", format!("{}/{db}", pg_base()))
            .env("PORT", port.to_string())
            .env(
                "JWT_ACCESS_SECRET",
                "faults-test-access-secret-0123456789abcdef",
            )
            .env(
                "JWT_REFRESH_SECRET",
                "faults-test-refresh-secret-0123456789abcdef",
            )
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let mut s = Server {
            child,
            port,
            db,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready(port) {
            if let Ok(Some(st)) = s.child.try_wait() {
                panic!(
                    "chatd exited ({st}): {}",
                    std::fs::read_to_string(&s.log).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "chatd never became ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    }

    fn db_url(&self) -> String {
        format!("{}/{}", pg_base(), self.db)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Ok(mut admin) =
            postgres::Client::connect(&format!("{}/postgres", pg_base()), postgres::NoTls)
        {
            let _ =
                admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db));
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

fn ready(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.starts_with("HTTP/1.1 200")
}

/// A faultproxy in front of the server; killed with the guard.
struct Proxy {
    child: Child,
    addr: String,
}

impl Proxy {
    fn start(upstream: u16, fault: &str) -> Proxy {
        let mut child = Command::new(env!("CARGO_BIN_EXE_faultproxy"))
            .args(["--upstream", &format!("127.0.0.1:{upstream}"), fault])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start faultproxy");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().expect("piped"))
            .read_line(&mut line)
            .expect("faultproxy's address");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("faultproxy said {line:?}"))
            .to_string();
        Proxy { child, addr }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One small delivery run through `proxy`; returns the exit code and the JSON report.
fn bench(proxy: &Proxy, server: &Server, extra: &[&str]) -> (i32, Value) {
    let json = std::env::temp_dir().join(format!(
        "chatbench-faults-{}-{}.json",
        std::process::id(),
        free_port()
    ));
    let db = server.db_url();
    let mut args = vec![
        "delivery",
        "--url",
        &proxy.addr,
        "--senders",
        "2",
        "--messages",
        "25",
        "--interval-ms",
        "40",
        "--receivers",
        "3",
        // Two registrations per run: 16 in all stay under chatd's default limit of
        // 30 registrations per address per minute, so no config file is needed.
        "--users",
        "2",
        "--settle-ms",
        "200",
        "--drain-secs",
        "5",
        "--database-url",
        &db,
    ];
    args.extend_from_slice(extra);
    let json_arg = json.to_string_lossy().into_owned();
    args.extend_from_slice(&["--json", &json_arg]);
    let out = Command::new(env!("CARGO_BIN_EXE_chat-bench"))
        .args(&args)
        .output()
        .expect("run chat-bench");
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}); chat-bench said:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let _ = std::fs::remove_file(&json);
    let code = out.status.code().unwrap_or(-1);
    let report: Value = serde_json::from_str(&text).expect("JSON report");
    assert_eq!(
        report["exit_code"], code,
        "the exit status and the JSON agree"
    );
    (code, report)
}

fn counter(r: &Value, name: &str) -> u64 {
    r["counters"][name].as_u64().unwrap_or(0)
}

fn failures(r: &Value) -> String {
    r["failures"].to_string()
}

#[test]
fn each_fault_fails_the_run_with_its_counter() {
    let started = Instant::now();
    let server = Server::start();

    // Through the proxy without a fault: a clean pass, database included.
    let p = Proxy::start(server.port, "--none");
    let (code, r) = bench(&p, &server, &[]);
    assert_eq!(code, 0, "clean run: {}", failures(&r));
    assert_eq!(r["database"]["rows"], 50, "{}", r["database"]);
    assert!(r["frames_per_message"].as_f64().is_some_and(|f| f > 0.0));
    drop(p);

    // (fault, counter that must name it, counters that must stay 0)
    let cases: [(&str, &str, &[&str]); 6] = [
        ("--drop-message", "lost", &["duplicated", "server_closed"]),
        (
            "--duplicate-message",
            "duplicated",
            &["lost", "server_closed"],
        ),
        (
            "--reorder-messages",
            "out_of_order",
            &["lost", "duplicated", "server_closed"],
        ),
        ("--inject-foreign", "wrong_room", &["lost", "bad_frames"]),
        ("--inject-garbage", "bad_frames", &["lost", "wrong_room"]),
        (
            "--close-1013",
            "server_closed",
            &["lost", "duplicated", "gaps"],
        ),
    ];
    for (fault, name, clean) in cases {
        let p = Proxy::start(server.port, fault);
        let (code, r) = bench(&p, &server, &[]);
        assert_eq!(code, 1, "{fault}: {}", failures(&r));
        assert!(counter(&r, name) >= 1, "{fault}: {name} = 0");
        assert!(
            failures(&r).contains(name),
            "{fault}: the verdict names {name}: {}",
            failures(&r)
        );
        for other in clean {
            assert_eq!(counter(&r, other), 0, "{fault}: {other}");
        }
        // The proxy never touches what was stored.
        assert_eq!(r["database"]["rows"], 50, "{fault}: {}", r["database"]);
        if fault == "--close-1013" {
            assert_eq!(r["close_codes"]["1013"], 1, "{fault}: {}", r["close_codes"]);
        }
    }

    // A scenario that expects server closes says so: the same 1013 then passes, as
    // the receiver rejoins with last_seen_seq and catches up exactly.
    let p = Proxy::start(server.port, "--close-1013");
    let (code, r) = bench(&p, &server, &["--allow-server-closes"]);
    assert_eq!(code, 0, "allowed 1013: {}", failures(&r));
    assert_eq!(counter(&r, "server_closed"), 1);
    assert!(counter(&r, "reconnects") >= 1);

    eprintln!("faults test took {:.1} s", started.elapsed().as_secs_f64());
}
