//! A webhook receiver for the tests: a real HTTP/1.1 server on loopback (keep-alive, one
//! thread per connection) that checks every request's Standard Webhooks signature itself
//! (HMAC-SHA256 computed here, not by chatd's code) and fails on purpose as its plan says:
//! a 500, a hang past the sender's timeout, or a connection reset.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The endpoints' secret (24 random bytes, as Standard Webhooks generates them).
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// What the receiver does with one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 204: delivered.
    None,
    /// 500.
    Status500,
    /// No answer for 1.5 s (past the sender's timeout), then the connection closes.
    Hang,
    /// The connection is reset (RST) without an answer.
    Reset,
    /// 204 after 30 ms, counted in flight meanwhile (a receiver doing work per event).
    Slow,
}

/// One request received.
#[derive(Clone, Debug)]
pub struct Got {
    /// `webhook-id`
    pub id: String,
    /// The body.
    pub body: String,
    /// The body parsed.
    pub json: Value,
    /// Whether it was answered 2xx.
    pub ok: bool,
}

type Plan = Box<dyn FnMut(usize, &Value) -> Fault + Send>;

/// The receiver.
pub struct Receiver {
    /// `http://127.0.0.1:port/hook`
    pub url: String,
    /// Every request, in the order they arrived.
    pub log: Mutex<Vec<Got>>,
    plan: Mutex<Plan>,
    count: AtomicUsize,
    /// Requests whose signature or headers were wrong.
    pub bad: AtomicUsize,
    /// Requests being answered, per room.
    in_flight: Mutex<HashMap<String, usize>>,
    /// Most requests of one room in flight at once.
    pub max_in_flight: AtomicUsize,
    /// Faults served, by kind.
    pub faults: Mutex<HashMap<String, usize>>,
}

/// The signature Standard Webhooks defines, computed independently of chatd.
pub fn expected_signature(id: &str, ts: &str, body: &str) -> String {
    let key = STANDARD
        .decode(SECRET.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.{body}").as_bytes());
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

impl Receiver {
    /// Starts a receiver whose plan decides each request (numbered from 0).
    pub fn start(plan: impl FnMut(usize, &Value) -> Fault + Send + 'static) -> Arc<Receiver> {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let r = Arc::new(Receiver {
            url: format!("http://{}/hook", l.local_addr().unwrap()),
            log: Mutex::new(Vec::new()),
            plan: Mutex::new(Box::new(plan)),
            count: AtomicUsize::new(0),
            bad: AtomicUsize::new(0),
            in_flight: Mutex::new(HashMap::new()),
            max_in_flight: AtomicUsize::new(0),
            faults: Mutex::new(HashMap::new()),
        });
        let me = r.clone();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let me = me.clone();
                std::thread::spawn(move || me.serve(s));
            }
        });
        r
    }

    /// Changes the plan.
    pub fn set_plan(&self, plan: impl FnMut(usize, &Value) -> Fault + Send + 'static) {
        *self.plan.lock().unwrap() = Box::new(plan);
    }

    /// The requests answered 2xx.
    pub fn delivered(&self) -> Vec<Got> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|g| g.ok)
            .cloned()
            .collect()
    }

    /// How many faults of each kind were served.
    pub fn fault_count(&self, f: Fault) -> usize {
        *self
            .faults
            .lock()
            .unwrap()
            .get(&format!("{f:?}"))
            .unwrap_or(&0)
    }

    fn serve(&self, s: TcpStream) {
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut w = s;
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let mut headers = HashMap::new();
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 {
                    return;
                }
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                }
            }
            let len: usize = headers
                .get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            if r.read_exact(&mut body).is_err() {
                return;
            }
            let body = String::from_utf8(body).unwrap_or_default();
            if !self.answer(&mut w, &line, &headers, body) {
                return;
            }
        }
    }

    /// Handles one request; false when the connection is to end.
    fn answer(
        &self,
        w: &mut TcpStream,
        line: &str,
        headers: &HashMap<String, String>,
        body: String,
    ) -> bool {
        let h = |k: &str| headers.get(k).cloned().unwrap_or_default();
        let (id, ts, sig) = (
            h("webhook-id"),
            h("webhook-timestamp"),
            h("webhook-signature"),
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let fresh = ts.parse::<u64>().is_ok_and(|t| t.abs_diff(now) < 300);
        let want = expected_signature(&id, &ts, &body);
        let signed = sig.split(' ').any(|s| s == want);
        let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if !line.starts_with("POST /hook ") || !fresh || !signed || json["id"] != id.as_str() {
            self.bad.fetch_add(1, SeqCst);
        }
        let room = json["room_id"].as_str().unwrap_or("").to_string();
        if !room.is_empty() {
            let mut m = self.in_flight.lock().unwrap();
            let n = m.entry(room.clone()).or_insert(0);
            *n += 1;
            self.max_in_flight.fetch_max(*n, SeqCst);
        }
        let n = self.count.fetch_add(1, SeqCst);
        let fault = (self.plan.lock().unwrap())(n, &json);
        *self
            .faults
            .lock()
            .unwrap()
            .entry(format!("{fault:?}"))
            .or_insert(0) += 1;
        let ok = matches!(fault, Fault::None | Fault::Slow);
        if fault == Fault::Slow {
            std::thread::sleep(Duration::from_millis(30));
        }
        // Logged before answering: once the sender has its answer, the log has it.
        self.log.lock().unwrap().push(Got { id, body, json, ok });
        // Out of flight before answering: once the sender has its answer it may send the
        // next request at once, on another connection; a hang's sender gives up at its timeout.
        if !room.is_empty() {
            *self.in_flight.lock().unwrap().get_mut(&room).unwrap() -= 1;
        }
        match fault {
            Fault::None | Fault::Slow => w.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").is_ok(),
            Fault::Status500 => w
                .write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\n\r\noops")
                .is_ok(),
            Fault::Hang => {
                std::thread::sleep(Duration::from_millis(1500));
                false
            }
            Fault::Reset => {
                let _ = socket2::SockRef::from(&*w).set_linger(Some(Duration::ZERO));
                false
            }
        }
    }
}
