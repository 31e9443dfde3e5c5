//! Web Push at least once: a push the push service fails (5xx, 429 with `Retry-After`,
//! connection refused) is tried again until taken, across a node killed with SIGKILL;
//! one too old is dropped and counted; an edit that adds a mention notifies the member
//! it adds, once; an endpoint's name is resolved and checked when pushing, not when
//! subscribing. The push service is the one of `push.rs` (VAPID checked, payload
//! decrypted). Each case has a member or a request that must succeed beside the one
//! that must not.

use crate::push::{PushService, SUBJECT, member, node, send, subscribe, wait_pushes};
use crate::support::*;
use chatd::hooks::webpush;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

fn metric(node: &Node, name: &str) -> f64 {
    let r = raw_request(&node.metrics(), "GET", "/metrics", None, None);
    let text = String::from_utf8_lossy(&r.body).to_string();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

fn outbox(db: &TestDb) -> (i64, i32) {
    let r = db
        .client()
        .query_one(
            "SELECT count(*), coalesce(max(attempts), 0) FROM push_outbox",
            &[],
        )
        .unwrap();
    (r.get(0), r.get(1))
}

/// Waits until `f` holds (at most `secs`).
fn until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < end, "{what} within {secs} s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn set_level(addr: &str, u: &User, room: &str, level: &str) {
    let (s, v) = request(
        addr,
        "PUT",
        &format!("/rooms/{room}/notifications"),
        Some(&u.token),
        Some(&json!({ "level": level })),
    );
    assert_eq!(s, 200, "{v}");
}

/// A push service that answers 500, then 429 with `Retry-After: 3`, then takes the push:
/// the member gets exactly one push (decrypted, its message), made on the third
/// request, the third no sooner than three seconds after the second; a member whose
/// service takes it at once gets it (the control). Counted: two sent, two failed,
/// none dropped. Fails if failures are not retried (no push), if a retry is made
/// after a success (two pushes), or if `Retry-After` is ignored (the backoff alone is
/// at most two seconds there).
#[test]
fn a_failing_push_service_gets_the_push_once_it_takes_it() {
    let db = TestDb::new();
    let svc = PushService::start();
    let n = node(&db, &svc, 1, |_| {});
    let addr = n.addr();
    let alice = register(&addr, "alice");
    let room = create_room(&addr, &alice.token);
    let (_, flaky) = member(&addr, &svc, &room, "flaky");
    let (_, steady) = member(&addr, &svc, &room, "steady");
    svc.failures
        .lock()
        .unwrap()
        .insert(flaky.path.clone(), VecDeque::from([500, 429]));
    let id = send(&addr, &alice, &room, "hello");
    wait_pushes(&svc, &steady, 1, 15);
    let got = wait_pushes(&svc, &flaky, 1, 30);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(svc.payloads(&flaky).len(), 1, "{:?}", svc.payloads(&flaky));
    assert_eq!(svc.payloads(&steady).len(), 1);
    assert_eq!(
        (got[0]["count"].clone(), got[0]["message_ids"].clone()),
        (json!(1), json!([id]))
    );
    let times = svc.requests.lock().unwrap()[&flaky.path].clone();
    assert_eq!(times.len(), 3, "500, 429, then 201");
    assert!(
        times[2] - times[1] >= Duration::from_secs(3),
        "Retry-After: 3 honoured: {:?}",
        times[2] - times[1]
    );
    assert!(svc.bad.lock().unwrap().is_empty());
    assert_eq!(metric(&n, "chatd_push_sent_total"), 2.0);
    assert_eq!(metric(&n, "chatd_push_failed_total"), 2.0);
    assert_eq!(metric(&n, "chatd_push_dropped_total"), 0.0);
    assert_eq!(outbox(&db).0, 0, "the outbox is empty once taken");
}

/// A push older than `push.max_age_hours` is given up: dropped, counted, never made;
/// the member beside it whose service works gets its push. Fails if failed pushes are
/// kept forever (the row stays) or the drop is not counted.
#[test]
fn a_push_too_old_is_dropped_and_counted() {
    let db = TestDb::new();
    let svc = PushService::start();
    let n = node(&db, &svc, 1, |_| {});
    let addr = n.addr();
    let alice = register(&addr, "alice");
    let room = create_room(&addr, &alice.token);
    let (_, doomed) = member(&addr, &svc, &room, "doomed");
    let (_, fine) = member(&addr, &svc, &room, "fine");
    svc.failures
        .lock()
        .unwrap()
        .insert(doomed.path.clone(), VecDeque::from(vec![503; 1000]));
    send(&addr, &alice, &room, "hello");
    wait_pushes(&svc, &fine, 1, 15);
    until(15, "a failed attempt", || outbox(&db).1 >= 1);
    db.client()
        .execute(
            "UPDATE push_outbox SET created_at = now() - interval '25 hours'",
            &[],
        )
        .unwrap();
    until(15, "the old push dropped", || outbox(&db).0 == 0);
    assert!(svc.payloads(&doomed).is_empty());
    until(5, "the drop counted", || {
        metric(&n, "chatd_push_dropped_total") == 1.0
    });
    assert!(metric(&n, "chatd_push_failed_total") >= 1.0);
    assert_eq!(metric(&n, "chatd_push_sent_total"), 1.0);
}

/// A push service down (connection refused) while the node that owes the push is
/// killed with SIGKILL: the push stays in the outbox, and a node started afterwards,
/// with the service back, makes it, once. Fails if a due push lives only in a node's
/// memory, or if a failed attempt loses it.
#[test]
fn a_push_survives_a_killed_node_and_a_service_down() {
    let db = TestDb::new();
    let port = free_port();
    let svc = PushService::down(&format!("127.0.0.1:{port}"));
    let key = webpush::generate_key();
    *svc.vapid.lock().unwrap() = webpush::public_point(&key);
    let dir = std::env::temp_dir().join(format!("chatd-push-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("server.toml");
    let base = std::fs::read_to_string(loadtest_config()).unwrap();
    let push = format!(
        "[push]\nvapid_private_key = \"{}\"\nsubject = \"{SUBJECT}\"\ngrace_secs = 1\n\
         window_secs = 0\nallow_private_endpoints = true\ntimeout_ms = 1000\n",
        webpush::key_to_b64(&key)
    );
    std::fs::write(&cfg, format!("{base}\n{push}")).unwrap();
    let start =
        |id: &str| Process::start_with(&db, id, "warn", std::process::Stdio::null(), Some(&cfg));
    let mut first = start("push-1");
    let addr = first.addr.clone();
    let alice = register(&addr, "alice");
    let room = create_room(&addr, &alice.token);
    let bob = register(&addr, "bob");
    join_room(&addr, &bob.token, &room);
    let (phone, sub) = svc.browser("bob");
    subscribe(&addr, &bob, &sub);
    let id = send(&addr, &alice, &room, "while the service was down");
    until(20, "an attempt refused", || outbox(&db).1 >= 1);
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    assert_eq!(outbox(&db).0, 1, "the push waits in the outbox");
    svc.listen();
    let second = start("push-2");
    let got = wait_pushes(&svc, &phone, 1, 40);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(svc.payloads(&phone).len(), 1, "{:?}", svc.payloads(&phone));
    assert_eq!(
        (got[0]["count"].clone(), got[0]["message_ids"].clone()),
        (json!(1), json!([id]))
    );
    assert_eq!(outbox(&db).0, 0);
    drop(second);
    let _ = std::fs::remove_dir_all(&dir);
}

/// An edit that adds a mention of an offline member at level `mentions` pushes it once
/// (the edited message, its new text); a member mentioned before and again is not
/// pushed a second time, nor one whose mention the edit removed; the first mentions
/// pushed both (the control). Fails if edits notify nobody, or notify the mentions the
/// message already had.
#[test]
fn an_edit_adding_a_mention_pushes_that_member_once() {
    let db = TestDb::new();
    let svc = PushService::start();
    let n = node(&db, &svc, 1, |c| c.push.window_secs = 0);
    let addr = n.addr();
    let alice = register(&addr, "alice");
    let room = create_room(&addr, &alice.token);
    let (bob, bob_phone) = member(&addr, &svc, &room, "bob");
    let (carol, carol_phone) = member(&addr, &svc, &room, "carol");
    let (dave, dave_phone) = member(&addr, &svc, &room, "dave");
    for u in [&bob, &carol, &dave] {
        set_level(&addr, u, &room, "mentions");
    }
    let text = format!("hi @{} @{}", carol.username, dave.username);
    let id = send(&addr, &alice, &room, &text);
    wait_pushes(&svc, &carol_phone, 1, 15);
    wait_pushes(&svc, &dave_phone, 1, 15);
    assert!(svc.payloads(&bob_phone).is_empty(), "bob is not mentioned");
    let edited = format!("hi @{} @{}", carol.username, bob.username);
    let (s, v) = request(
        &addr,
        "PATCH",
        &format!("/rooms/{room}/messages/{id}"),
        Some(&alice.token),
        Some(&json!({ "content": edited })),
    );
    assert_eq!(s, 200, "{v}");
    let got = wait_pushes(&svc, &bob_phone, 1, 15);
    std::thread::sleep(Duration::from_secs(3));
    let p: &Value = &got[0];
    assert_eq!(p["message_ids"], json!([id]), "{p}");
    assert_eq!(
        (p["count"].clone(), p["preview"].clone()),
        (json!(1), json!(edited))
    );
    assert_eq!(svc.payloads(&bob_phone).len(), 1);
    assert_eq!(
        svc.payloads(&carol_phone).len(),
        1,
        "carol's mention is not new"
    );
    assert_eq!(
        svc.payloads(&dave_phone).len(),
        1,
        "dave's mention was removed"
    );
}

/// Subscribing resolves no name (a name that does not resolve is taken: it is checked
/// when pushing), while a literal private address is still refused at once. A name that
/// resolves to a private address at push time has its subscription removed, counted
/// as refused. Fails if subscribing resolves names (400 for the unresolvable one) or
/// if the sender connects to what the name gives without checking it.
#[test]
fn endpoint_names_are_checked_when_pushing() {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    let resolved: Vec<std::net::IpAddr> =
        std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), 443))
            .map(|a| a.map(|a| a.ip()).collect())
            .unwrap_or_default();
    assert!(
        !resolved.is_empty()
            && resolved.iter().all(|ip| match ip {
                std::net::IpAddr::V4(v) => v.is_private() || v.is_loopback(),
                std::net::IpAddr::V6(v) => v.is_loopback() || (v.segments()[0] & 0xfe00) == 0xfc00,
            }),
        "this test needs the host name {host} to resolve to private addresses: {resolved:?}"
    );
    let db = TestDb::new();
    let svc = PushService::start();
    let n = node(&db, &svc, 1, |c| c.push.allow_private_endpoints = false);
    let addr = n.addr();
    let alice = register(&addr, "alice");
    let room = create_room(&addr, &alice.token);
    let bob = register(&addr, "bob");
    join_room(&addr, &bob.token, &room);
    let (_, sub) = svc.browser("bob");
    let keys = sub["keys"].clone();
    let post = |endpoint: String| {
        let body = json!({"endpoint": endpoint, "keys": keys});
        request(
            &addr,
            "POST",
            "/me/push-subscriptions",
            Some(&bob.token),
            Some(&body),
        )
    };
    let (s, v) = post("https://push.example.invalid/push/1".into());
    assert_eq!(s, 201, "no resolution when subscribing: {v}");
    let (s, _) = post("https://127.0.0.1/push/1".into());
    assert_eq!(s, 400, "a literal loopback address is refused at once");
    let (s, v) = post(format!("https://{host}:1/push/2"));
    assert_eq!(s, 201, "{v}");
    send(&addr, &alice, &room, "hello");
    let endpoints = || -> Vec<String> {
        db.client()
            .query("SELECT endpoint FROM push_subscriptions ORDER BY id", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    until(20, "the private name's subscription removed", || {
        endpoints().len() == 1
    });
    assert_eq!(
        endpoints(),
        vec!["https://push.example.invalid/push/1".to_string()]
    );
    assert_eq!(
        metric(
            &n,
            "chatd_push_subscriptions_removed_total{reason=\"refused\"}"
        ),
        1.0
    );
    // The name that does not resolve is tried again later, not removed.
    until(10, "a failed attempt for the unresolvable name", || {
        metric(&n, "chatd_push_failed_total") >= 1.0
    });
    assert_eq!(outbox(&db).0, 1);
}
