//! Webhooks end to end: chatd POSTs to a real receiver on loopback that checks every
//! signature itself and fails on purpose (500s, timeouts, connection resets); every
//! event arrives, in seq order per room, one request in flight per room, duplicates only
//! as the same id and body; dead events are listed and sent again; a dead endpoint
//! delays no other; a node SIGKILLed and PostgreSQL restarted lose nothing.

pub mod receiver;
mod reports;
mod restarts;

use crate::support::*;
use chatd::config::WebhookConfig;
use receiver::{Fault, Got, Receiver, SECRET};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// An endpoint for the receiver: every event, short timeout and retries.
pub fn endpoint(name: &str, r: &Receiver) -> WebhookConfig {
    WebhookConfig {
        name: name.into(),
        url: r.url.clone(),
        secret: SECRET.into(),
        events: vec!["*".into()],
        timeout_ms: 500,
        retry_base_ms: 50,
        concurrency: 4,
        ..WebhookConfig::default()
    }
}

/// Waits until `done` holds (or fails saying `what`).
pub fn wait_for(secs: u64, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The rooms' last seqs.
pub fn heads(db_url: &str, rooms: &[String]) -> BTreeMap<String, i64> {
    let mut c = postgres::Client::connect(db_url, postgres::NoTls).unwrap();
    rooms
        .iter()
        .map(|r| {
            let id: uuid::Uuid = r.parse().unwrap();
            let last: i64 = c
                .query_one("SELECT last_seq FROM rooms WHERE id = $1", &[&id])
                .unwrap()
                .get(0);
            (r.clone(), last)
        })
        .collect()
}

/// Per room, the seqs of the delivered room events in the order they were first
/// delivered (a redelivery of an id is checked to carry the same body, then skipped).
pub fn delivered_seqs(got: &[Got]) -> (BTreeMap<String, Vec<i64>>, usize) {
    let mut first: HashMap<String, String> = HashMap::new();
    let mut seqs: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut dups = 0;
    for g in got {
        if let Some(body) = first.get(&g.id) {
            assert_eq!(body, &g.body, "a redelivery of {} changed its body", g.id);
            dups += 1;
            continue;
        }
        first.insert(g.id.clone(), g.body.clone());
        if let (Some(room), Some(seq)) = (g.json["room_id"].as_str(), g.json["seq"].as_i64()) {
            assert_eq!(g.id, format!("evt_{}_{seq}", room.replace('-', "")));
            seqs.entry(room.to_string()).or_default().push(seq);
        }
    }
    (seqs, dups)
}

/// Every request of a room's events, all attempts, in arrival order: seqs never go
/// back (a retry repeats a seq, the next event comes after).
pub fn assert_attempts_in_order(log: &[Got]) {
    let mut last: HashMap<String, i64> = HashMap::new();
    for g in log {
        if let (Some(room), Some(seq)) = (g.json["room_id"].as_str(), g.json["seq"].as_i64()) {
            let before = last.insert(room.to_string(), seq).unwrap_or(0);
            assert!(seq >= before, "room {room}: seq {seq} sent after {before}");
        }
    }
}

fn count_type(got: &[Got], t: &str) -> usize {
    got.iter().filter(|g| g.json["type"] == t).count()
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).map(|v| v.trim().parse().unwrap()))
        .unwrap_or_else(|| panic!("no {series} in metrics"))
}

#[test]
fn every_event_arrives_signed_in_order_through_500s_timeouts_and_resets() {
    // Of every 10 requests: one 500, one reset, and every 20th hangs past the timeout.
    let r = Receiver::start(|n, _| match n % 10 {
        3 => Fault::Status500,
        6 => Fault::Reset,
        8 if n % 20 == 8 => Fault::Hang,
        _ => Fault::None,
    });
    let db = TestDb::new();
    let node = start_with(&db, |c| {
        c.webhooks = vec![endpoint("test", &r)];
        crate::admin::with_key(c);
    });
    let addr = node.addr();
    let alice = register(&addr, "wha");
    let bob = register(&addr, "whb");
    let rooms: Vec<String> = (0..3).map(|_| create_room(&addr, &alice.token)).collect();
    let mut http = Http::connect(&addr);
    let mut first = None;
    for room in &rooms {
        join_room(&addr, &bob.token, room);
    }
    for i in 0..15 {
        for room in &rooms {
            let m = post_message(&mut http, &alice.token, room, &format!("m{i}"));
            first.get_or_insert((room.clone(), m));
        }
    }
    let (room0, m) = first.unwrap();
    let mid = m["id"].as_i64().unwrap();
    let path = format!("/rooms/{room0}/messages/{mid}");
    let edited = json!({"content": "edited"});
    assert_eq!(
        request(&addr, "PATCH", &path, Some(&alice.token), Some(&edited)).0,
        200
    );
    let react = format!("{path}/reactions/%F0%9F%91%8D");
    assert_eq!(request(&addr, "PUT", &react, Some(&bob.token), None).0, 200);
    let mid2 = post_message(&mut http, &alice.token, &room0, "to delete")["id"].clone();
    let del = format!("/rooms/{room0}/messages/{mid2}");
    assert_eq!(
        request(&addr, "DELETE", &del, Some(&alice.token), None).0,
        200
    );
    let me = json!({"display_name": "Bob B"});
    assert_eq!(
        request(&addr, "PATCH", "/me", Some(&bob.token), Some(&me)).0,
        200
    );

    // The product's backend creates a user and deactivates it.
    let key = Some(crate::admin::KEY);
    let carol = json!({"username": "whcarol"});
    let (s, carol) = request(&addr, "POST", "/admin/users", key, Some(&carol));
    assert_eq!(s, 201, "{carol}");
    let off = format!("/admin/users/{}/deactivate", carol["id"].as_str().unwrap());
    assert_eq!(request(&addr, "POST", &off, key, None).0, 200);

    let want = heads(&db.url, &rooms);
    wait_for(90, "every event delivered", || {
        let got = r.delivered();
        let (seqs, _) = delivered_seqs(&got);
        want.iter()
            .all(|(room, last)| seqs.get(room).is_some_and(|s| s.len() as i64 == *last))
            && count_type(&got, "user.created") == 3
            && count_type(&got, "user.updated") == 1
            && count_type(&got, "user.deactivated") == 1
            && count_type(&got, "room.created") == 3
    });
    let got = r.delivered();
    let (seqs, dups) = delivered_seqs(&got);
    for (room, last) in &want {
        assert_eq!(seqs[room], (1..=*last).collect::<Vec<_>>(), "room {room}");
    }
    assert_eq!(dups, 0, "no redelivery after a 2xx");
    let log = r.log.lock().unwrap().clone();
    assert_attempts_in_order(&log);
    assert_eq!(
        r.bad.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "every signature valid"
    );
    assert_eq!(r.max_in_flight.load(std::sync::atomic::Ordering::SeqCst), 1);
    for f in [Fault::Status500, Fault::Reset, Fault::Hang] {
        assert!(r.fault_count(f) > 0, "the receiver served no {f:?}");
    }
    // Each kind of entry, with the stream's shape: data is the history's entry.
    for t in [
        "message.created",
        "message.edited",
        "message.deleted",
        "reaction.added",
        "member.joined",
    ] {
        assert!(count_type(&got, t) > 0, "no {t}");
    }
    let created = got
        .iter()
        .find(|g| g.json["type"] == "message.created" && g.json["data"]["content"] == "m3")
        .unwrap();
    let room = created.json["room_id"].as_str().unwrap();
    let page = request(
        &addr,
        "GET",
        &format!("/rooms/{room}/messages?limit=100"),
        Some(&alice.token),
        None,
    )
    .1;
    let entry = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["seq"] == created.json["seq"])
        .unwrap();
    assert_eq!(&created.json["data"], entry);
    assert_eq!(created.json["created_at"], entry["created_at"]);
    let updated = got
        .iter()
        .find(|g| g.json["type"] == "user.updated")
        .unwrap();
    assert_eq!(updated.json["data"]["display_name"], "Bob B");
    assert_eq!(updated.json["data"]["id"], bob.id.as_str());
    assert!(updated.json.get("room_id").is_none());
    let off = got
        .iter()
        .find(|g| g.json["type"] == "user.deactivated")
        .unwrap();
    assert_eq!(off.json["data"]["id"], carol["id"]);
    assert_eq!(off.json["data"]["username"], "whcarol");
    let text = raw_request(&node.metrics(), "GET", "/metrics", None, None);
    let text = String::from_utf8_lossy(&text.body).to_string();
    let delivered = metric(&text, "chatd_webhook_delivered_total{endpoint=\"test\"}");
    assert!(delivered >= got.len() as f64, "{delivered} < {}", got.len());
    assert!(metric(&text, "chatd_webhook_failed_total{endpoint=\"test\"}") >= 3.0);
    assert_eq!(
        metric(&text, "chatd_webhook_dead_total{endpoint=\"test\"}"),
        0.0
    );
}

#[test]
fn an_outbox_event_about_a_room_waits_for_the_rooms_request_in_flight() {
    // Every request takes a while: room.created (from the outbox, with the room's id)
    // would overlap the room's stream events if it had a lane of its own.
    let r = Receiver::start(|_, _| Fault::Slow);
    let db = TestDb::new();
    let node = start_with(&db, |c| c.webhooks = vec![endpoint("test", &r)]);
    let addr = node.addr();
    let alice = register(&addr, "whs");
    let rooms: Vec<String> = (0..3).map(|_| create_room(&addr, &alice.token)).collect();
    let mut http = Http::connect(&addr);
    for i in 0..10 {
        for room in &rooms {
            post_message(&mut http, &alice.token, room, &format!("s{i}"));
        }
    }
    wait_for(60, "every event delivered", || {
        let got = r.delivered();
        count_type(&got, "message.created") == 30 && count_type(&got, "room.created") == 3
    });
    assert_eq!(r.max_in_flight.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn dead_events_are_listed_and_sent_again_and_a_dead_endpoint_delays_no_other() {
    let up = Receiver::start(|_, _| Fault::None);
    let down = Receiver::start(|_, _| Fault::Status500);
    let db = TestDb::new();
    let node = start_with(&db, |c| {
        let mut dead = endpoint("down", &down);
        dead.events = vec!["message.created".into()];
        dead.max_attempts = 3;
        dead.retry_base_ms = 20;
        c.webhooks = vec![dead, endpoint("up", &up)];
        crate::admin::with_key(c);
    });
    let addr = node.addr();
    let alice = register(&addr, "whd");
    let room = create_room(&addr, &alice.token);
    let mut http = Http::connect(&addr);
    let sent = Instant::now();
    for i in 0..5 {
        post_message(&mut http, &alice.token, &room, &format!("d{i}"));
    }
    wait_for(10, "the healthy endpoint's events", || {
        count_type(&up.delivered(), "message.created") == 5
    });
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "the failing endpoint slowed the other"
    );
    assert_eq!(down.delivered().len(), 0);

    let admin = Some(crate::admin::KEY);
    let list = |token| request(&addr, "GET", "/admin/webhooks/dead", token, None);
    assert_eq!(list(None).0, 401);
    assert_eq!(list(Some("backend-key-0123456789abcdef012345678X")).0, 401);
    // A user's token on the server API is 403.
    assert_eq!(list(Some(alice.token.as_str())).0, 403);
    let mut dead = Vec::new();
    wait_for(20, "five dead events", || {
        let (status, body) = list(admin);
        assert_eq!(status, 200, "{body}");
        dead = body["events"].as_array().unwrap().clone();
        dead.len() == 5
    });
    let attempts = down.log.lock().unwrap().len();
    assert_eq!(attempts, 15, "three attempts per event, then no more");
    for d in &dead {
        assert_eq!(d["endpoint"], "down");
        assert_eq!(d["type"], "message.created");
        assert_eq!(d["attempts"], 3);
        assert!(d["last_error"].as_str().unwrap().contains("500"), "{d}");
        assert_eq!(d["event"]["id"], d["event_id"]);
        assert_eq!(d["event"]["room_id"], room.as_str());
    }
    let text = raw_request(&node.metrics(), "GET", "/metrics", None, None);
    let text = String::from_utf8_lossy(&text.body).to_string();
    assert_eq!(
        metric(&text, "chatd_webhook_dead_total{endpoint=\"down\"}"),
        5.0
    );
    assert_eq!(
        metric(&text, "chatd_webhook_delivered_total{endpoint=\"up\"}") as usize,
        up.delivered().len()
    );

    // The receiver is back: each dead event, sent again, arrives with its id and body.
    down.set_plan(|_, _| Fault::None);
    for d in &dead {
        let path = format!("/admin/webhooks/dead/{}/retry", d["id"]);
        let (status, body) = request(&addr, "POST", &path, admin, None);
        assert_eq!(status, 202, "{body}");
        assert_eq!(request(&addr, "POST", &path, admin, None).0, 404);
    }
    wait_for(10, "the retried events", || down.delivered().len() == 5);
    let mut ids: Vec<&str> = dead
        .iter()
        .map(|d| d["event_id"].as_str().unwrap())
        .collect();
    let got = down.delivered();
    let mut got_ids: Vec<&str> = got.iter().map(|g| g.id.as_str()).collect();
    ids.sort();
    got_ids.sort();
    assert_eq!(ids, got_ids);
    for g in &got {
        let d = dead
            .iter()
            .find(|d| d["event_id"] == g.id.as_str())
            .unwrap();
        assert_eq!(&g.json, &d["event"]);
    }
    assert_eq!(list(admin).1["events"], json!([]));
    let bad = request(&addr, "POST", "/admin/webhooks/dead/x/retry", admin, None);
    assert_eq!(bad.0, 404);
}

#[test]
fn dead_events_need_an_api_key() {
    let db = TestDb::new();
    let node = start(&db);
    let (status, body) = request(&node.addr(), "GET", "/admin/webhooks/dead", Some("x"), None);
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid_token"))
    );
    let retry = "/admin/webhooks/dead/1/retry";
    assert_eq!(request(&node.addr(), "POST", retry, None, None).0, 401);
}
