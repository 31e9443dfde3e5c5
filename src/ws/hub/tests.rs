//! The hub's logic without a database: a store that records what it is asked and lets
//! the test answer, a mailbox that keeps what the answers post, and sockets that keep
//! the frames queued on them. The cases are in `tests/cases.rs`.

mod cases;

use super::*;
use crate::base::model::Message;
use crate::chat::edits::Change;
use crate::chat::reads::Mark;
use crate::chat::send::{Draft, NotQueued};
use crate::pg::notify::ReadMark;
use crate::ws::store::Reply;
use crate::ws::{JoinData, LiveBatch, Transport};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Read;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// What the hub asked of the store.
enum Call {
    Join(Uuid, Option<i64>, Reply<JoinData>),
    Range(Uuid, i64, i64, Reply<Vec<Arc<Message>>>),
    Send(Draft),
    Typing(Uuid, bool),
    Presence,
    Mark(Uuid, i64),
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Call::Join(r, last, _) => write!(f, "Join({r}, {last:?})"),
            Call::Range(r, a, u, _) => write!(f, "Range({r}, {a}, {u})"),
            Call::Send(d) => write!(f, "Send({})", d.content),
            Call::Typing(r, on) => write!(f, "Typing({r}, {on})"),
            Call::Presence => write!(f, "Presence"),
            Call::Mark(r, s) => write!(f, "Mark({r}, {s})"),
        }
    }
}

#[derive(Default)]
struct FakeStore {
    calls: Mutex<Vec<Call>>,
    /// Range reads are refused (a full job queue).
    busy: AtomicBool,
}

impl FakeStore {
    fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
    fn push(&self, c: Call) {
        self.calls.lock().unwrap().push(c);
    }
}

impl Store for FakeStore {
    fn check_join(&self, room: Uuid, _: Uuid, last: Option<i64>, reply: Reply<JoinData>) {
        self.push(Call::Join(room, last, reply));
    }
    fn range(
        &self,
        room: Uuid,
        after: i64,
        upto: i64,
        _: i64,
        reply: Reply<Vec<Arc<Message>>>,
    ) -> Result<(), ApiError> {
        if self.busy.load(Ordering::Relaxed) {
            return Err(ApiError::Unavailable);
        }
        self.push(Call::Range(room, after, upto, reply));
        Ok(())
    }
    fn send(&self, _: Identity, d: Draft, _: Reply<Arc<Message>>) -> Result<(), NotQueued> {
        self.push(Call::Send(d));
        Ok(())
    }
    fn change(
        &self,
        _: Identity,
        _: Uuid,
        _: i64,
        _: Change,
        _: Option<String>,
        _: Reply<Arc<Message>>,
    ) -> Result<(), ApiError> {
        Err(ApiError::Unavailable)
    }
    fn typing(&self, _: &Identity, room: Uuid, on: bool) {
        self.push(Call::Typing(room, on));
    }
    fn presence(&self, _: PresenceOp) {
        self.push(Call::Presence);
    }
    fn mark(&self, m: Mark) {
        self.push(Call::Mark(m.room, m.seq));
    }
}

#[derive(Default)]
struct Posted(Mutex<Vec<LoopEvent>>);

impl Mailbox for Posted {
    fn post(&self, ev: LoopEvent) {
        self.0.lock().unwrap().push(ev);
    }
}

/// A connection's transport: reads nothing, keeps what is queued.
struct Conn(Vec<Vec<u8>>);

impl Read for Conn {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        Err(std::io::ErrorKind::WouldBlock.into())
    }
}

impl Transport for Conn {
    fn send(&mut self, bytes: Vec<u8>) {
        self.0.push(bytes);
    }
    fn send_shared(&mut self, frame: Arc<[u8]>) {
        self.0.push(frame.to_vec());
    }
    fn queued(&self) -> usize {
        self.0.iter().map(Vec::len).sum()
    }
    fn backlog(&self) -> usize {
        self.queued()
    }
    fn discard(&mut self) {
        self.0.clear();
    }
    fn peer(&self) -> IpAddr {
        IpAddr::from([127, 0, 0, 1])
    }
    fn last_write(&self) -> Instant {
        Instant::now()
    }
}

#[derive(Default)]
struct Socks(BTreeMap<usize, (Session, Conn)>);

impl Sessions<Session> for Socks {
    fn with<R>(
        &mut self,
        k: usize,
        f: impl FnOnce(&mut Session, &mut dyn Transport) -> R,
    ) -> Option<R> {
        self.0.get_mut(&k).map(|(s, c)| f(s, c))
    }
    fn keys(&self) -> Vec<usize> {
        self.0.keys().copied().collect()
    }
}

/// One hub of one loop, its store and mailbox, and its sockets.
struct World {
    hub: Hub,
    store: Arc<FakeStore>,
    posted: Arc<Posted>,
    socks: Socks,
    interest: Arc<Interest>,
}

const ROOM: Uuid = Uuid::from_u128(0xA1);

fn who(n: u128) -> Identity {
    Identity {
        user_id: Uuid::from_u128(n),
        username: format!("user{n}"),
        session_id: Uuid::from_u128(1000 + n),
    }
}

fn msg(seq: i64) -> Arc<Message> {
    Arc::new(Message {
        id: seq,
        seq,
        room_id: ROOM,
        user_id: Uuid::from_u128(1),
        username: "user1".into(),
        content: format!("m{seq}"),
        ..Default::default()
    })
}

impl World {
    fn new() -> World {
        let store = Arc::new(FakeStore::default());
        let interest = Arc::new(Interest::new(1, 1));
        let cfg = WsConfig {
            coalesce_ms: 0,
            ..WsConfig::default()
        };
        let ctx = Arc::new(WsCtx {
            cfg,
            metrics: Arc::new(Metrics::default()),
            store: store.clone(),
            interest: interest.clone(),
            rules: Rules::from_config(&Default::default()),
            per_user: Arc::new(Default::default()),
        });
        let posted = Arc::new(Posted::default());
        let hub = Hub::new(ctx, 0, posted.clone());
        World {
            hub,
            store,
            posted,
            socks: Socks::default(),
            interest,
        }
    }

    /// Opens socket `k` for user `n`.
    fn open(&mut self, k: usize, n: u128) {
        let up = Upgrade {
            who: who(n),
            echo: false,
            leftover: Vec::new(),
        };
        let s = self.hub.open(k, up);
        self.socks.0.insert(k, (s, Conn(Vec::new())));
    }

    fn client(&mut self, k: usize, ev: Value) {
        let out = self.hub.client_event(k, &ev.to_string(), &mut self.socks);
        assert!(out.is_none());
    }

    /// Hands what the answers posted to the hub, then ends the turn.
    fn deliver_posted(&mut self) {
        let evs = std::mem::take(&mut *self.posted.0.lock().unwrap());
        for ev in evs {
            self.event(ev);
        }
    }

    fn event(&mut self, ev: LoopEvent) -> Outcomes {
        let out = self.hub.on_event(ev, &mut self.socks);
        self.hub.end_turn(&mut self.socks);
        out
    }

    /// The events queued on socket `k` since last asked, as (name, data).
    fn frames(&mut self, k: usize) -> Vec<(String, Value)> {
        let conn = &mut self.socks.0.get_mut(&k).expect("socket").1;
        std::mem::take(&mut conn.0)
            .iter()
            .map(|f| parse(f))
            .collect()
    }

    /// Joins socket `k` to ROOM and answers the check with the room at `seq`.
    fn join(&mut self, k: usize, seq: i64) {
        self.client(k, ev("join_room", json!({"room_id": ROOM})));
        self.interest.set_active(self.interest.wanted());
        self.event(LoopEvent::ShardsReady);
        let calls = self.store.take();
        let reply = calls.into_iter().find_map(|c| match c {
            Call::Join(room, None, reply) if room == ROOM => Some(reply),
            _ => None,
        });
        reply.expect("a join check")(Ok(JoinData {
            room_seq: seq,
            history: None,
        }));
        self.deliver_posted();
        // The socket now counts in the room's presence.
        let calls = self.store.take();
        assert!(matches!(&calls[..], [] | [Call::Presence]), "{calls:?}");
    }

    fn live(&mut self, seqs: &[i64]) {
        let msgs = seqs.iter().map(|&s| msg(s)).collect();
        self.event(LoopEvent::Live(Arc::new(LiveBatch { room: ROOM, msgs })));
    }
}

/// A client event (built from its name so that the scan of the events the server sends,
/// tests/it/asyncapi.rs, does not take it for one).
fn ev(name: &str, data: Value) -> Value {
    let mut v = json!({ "data": data });
    v["event"] = Value::from(name);
    v
}

/// A server frame (unmasked, one fragment) as (event, data).
fn parse(f: &[u8]) -> (String, Value) {
    assert_eq!(f[0], 0x81, "a final text frame");
    let (len, at) = match f[1] {
        126 => (usize::from(u16::from_be_bytes([f[2], f[3]])), 4),
        127 => (
            u64::from_be_bytes(f[2..10].try_into().unwrap()) as usize,
            10,
        ),
        n => (usize::from(n), 2),
    };
    assert_eq!(f.len(), at + len);
    let v: Value = serde_json::from_slice(&f[at..]).unwrap();
    (v["event"].as_str().unwrap().to_owned(), v["data"].clone())
}

/// The seqs of the `new_message` and `new_message_batch` frames, in order.
fn seqs(frames: &[(String, Value)]) -> Vec<i64> {
    let mut out = Vec::new();
    for (name, data) in frames {
        match name.as_str() {
            "new_message" => out.push(data["seq"].as_i64().unwrap()),
            "new_message_batch" => out.extend(
                data.as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m["seq"].as_i64().unwrap()),
            ),
            _ => {}
        }
    }
    out
}

fn names(frames: &[(String, Value)]) -> Vec<&str> {
    frames.iter().map(|(n, _)| n.as_str()).collect()
}
