//! Push to members who are offline: a real Web Push service on loopback (an HTTP/1.1
//! server thread) that accepts a push only with a VAPID token whose ES256 signature
//! checks against the key `GET /push/vapid-public-key` gives, for its own origin, and
//! opens the payload with the subscription's private key (RFC 8291: the crate's
//! `decrypt`, a function apart from `encrypt`, both held to the RFC's example). Each
//! test has a member who must be notified beside the one who must not, so that a
//! notifier that sends nothing fails too.

use crate::support::*;
use crate::webhooks::receiver::{Fault, Receiver, SECRET};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chatd::config::{Config, WebhookConfig};
use chatd::hooks::webpush;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The VAPID subject the nodes are configured with.
pub(crate) const SUBJECT: &str = "mailto:push-tests@example.com";

/// One browser: its key pair and auth secret, as a browser makes them.
pub(crate) struct Browser {
    key: p256::SecretKey,
    auth: [u8; 16],
    pub(crate) path: String,
}

/// The push service: the subscriptions it knows (by path) and what it received.
pub(crate) struct PushService {
    pub(crate) origin: String,
    /// The server's public key, from `GET /push/vapid-public-key`.
    pub(crate) vapid: Mutex<Vec<u8>>,
    browsers: Mutex<HashMap<String, Arc<Browser>>>,
    /// Paths answered 410 Gone.
    gone: Mutex<Vec<String>>,
    /// Statuses to answer next, per path, before accepting (a push answered so is not
    /// taken: the payload is checked but not recorded; a 429 says `Retry-After: 3`).
    pub(crate) failures: Mutex<HashMap<String, VecDeque<u16>>>,
    /// Payloads opened, per path.
    got: Mutex<HashMap<String, Vec<Value>>>,
    /// Requests refused (bad token, headers or encryption), with why.
    pub(crate) bad: Mutex<Vec<String>>,
    /// When requests came, per path.
    pub(crate) requests: Mutex<HashMap<String, Vec<Instant>>>,
}

impl PushService {
    pub(crate) fn start() -> Arc<PushService> {
        PushService::start_on("127.0.0.1:0")
    }

    /// A push service listening on `addr`.
    pub(crate) fn start_on(addr: &str) -> Arc<PushService> {
        let l = TcpListener::bind(addr).unwrap();
        PushService::serving(l, None)
    }

    /// A push service whose origin is `origin` but that listens nowhere yet (the
    /// service is down); `listen` brings it up on the origin's address.
    pub(crate) fn down(origin_addr: &str) -> Arc<PushService> {
        PushService::new(format!("http://{origin_addr}"))
    }

    fn new(origin: String) -> Arc<PushService> {
        Arc::new(PushService {
            origin,
            vapid: Mutex::new(Vec::new()),
            browsers: Mutex::new(HashMap::new()),
            gone: Mutex::new(Vec::new()),
            failures: Mutex::new(HashMap::new()),
            got: Mutex::new(HashMap::new()),
            bad: Mutex::new(Vec::new()),
            requests: Mutex::new(HashMap::new()),
        })
    }

    /// Starts answering on the origin's address.
    pub(crate) fn listen(self: &Arc<PushService>) {
        let addr = self.origin.trim_start_matches("http://").to_string();
        let l = TcpListener::bind(&addr).unwrap();
        PushService::serving(l, Some(self.clone()));
    }

    fn serving(l: TcpListener, s: Option<Arc<PushService>>) -> Arc<PushService> {
        let s =
            s.unwrap_or_else(|| PushService::new(format!("http://{}", l.local_addr().unwrap())));
        let me = s.clone();
        std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                let me = me.clone();
                std::thread::spawn(move || me.serve(c));
            }
        });
        s
    }

    /// A new browser with its own endpoint.
    pub(crate) fn browser(&self, name: &str) -> (Arc<Browser>, Value) {
        let b = Arc::new(Browser {
            key: webpush::generate_key(),
            auth: rand::random(),
            path: format!("/push/{name}-{}", uuid::Uuid::new_v4().simple()),
        });
        self.browsers
            .lock()
            .unwrap()
            .insert(b.path.clone(), b.clone());
        let sub = json!({
            "endpoint": format!("{}{}", self.origin, b.path),
            "keys": {"p256dh": B64.encode(webpush::public_point(&b.key)), "auth": B64.encode(b.auth)},
        });
        (b, sub)
    }

    pub(crate) fn payloads(&self, b: &Browser) -> Vec<Value> {
        self.got
            .lock()
            .unwrap()
            .get(&b.path)
            .cloned()
            .unwrap_or_default()
    }

    /// Serves one connection (keep-alive) until it closes.
    fn serve(&self, c: TcpStream) {
        let mut r = BufReader::new(c.try_clone().unwrap());
        let mut w = c;
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
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
            self.requests
                .lock()
                .unwrap()
                .entry(path.clone())
                .or_default()
                .push(Instant::now());
            let failure = self
                .failures
                .lock()
                .unwrap()
                .get_mut(&path)
                .and_then(|q| q.pop_front());
            let status = match self.accept(&path, &headers, &body) {
                Ok(_) if failure == Some(429) => "429 Slow Down\r\nretry-after: 3".into(),
                Ok(_) if failure.is_some() => format!("{} Failed", failure.unwrap_or(500)),
                Ok(v) => {
                    self.got
                        .lock()
                        .unwrap()
                        .entry(path.to_string())
                        .or_default()
                        .push(v);
                    match self.gone.lock().unwrap().contains(&path) {
                        true => "410 Gone".into(),
                        false => "201 Created".into(),
                    }
                }
                Err(why) => {
                    self.bad.lock().unwrap().push(why);
                    "400 Bad Request".into()
                }
            };
            let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
            if w.write_all(answer.as_bytes()).is_err() {
                return;
            }
        }
    }

    /// Checks a push as a push service and a browser would, and opens its payload.
    fn accept(
        &self,
        path: &str,
        h: &HashMap<String, String>,
        body: &[u8],
    ) -> Result<Value, String> {
        let browser = self
            .browsers
            .lock()
            .unwrap()
            .get(path)
            .cloned()
            .ok_or("unknown path")?;
        for (name, want) in [
            ("content-encoding", Some("aes128gcm")),
            ("ttl", None),
            ("urgency", None),
        ] {
            let v = h.get(name).ok_or(format!("no {name}"))?;
            if want.is_some_and(|w| w != v) {
                return Err(format!("{name}: {v}"));
            }
        }
        let auth = h.get("authorization").ok_or("no authorization")?;
        let (jwt, k) = auth
            .strip_prefix("vapid t=")
            .and_then(|r| r.split_once(", k="))
            .ok_or(format!("authorization is not vapid: {auth}"))?;
        let k = B64.decode(k).map_err(|_| "k is not base64url")?;
        if k != *self.vapid.lock().unwrap() {
            return Err("k is not the server's public key".into());
        }
        let (input, sig) = jwt.rsplit_once('.').ok_or("jwt")?;
        let sig = Signature::from_slice(&B64.decode(sig).map_err(|_| "sig")?).map_err(|_| "sig")?;
        VerifyingKey::from_sec1_bytes(&k)
            .unwrap()
            .verify(input.as_bytes(), &sig)
            .map_err(|_| "the token's signature does not verify")?;
        let (head, claims) = input.split_once('.').ok_or("jwt")?;
        let head: Value = serde_json::from_slice(&B64.decode(head).map_err(|_| "head")?).unwrap();
        let claims: Value =
            serde_json::from_slice(&B64.decode(claims).map_err(|_| "claims")?).unwrap();
        let now = chatd::base::model::now_secs();
        let exp = claims["exp"].as_u64().unwrap_or(0);
        if head["alg"] != "ES256"
            || claims["aud"] != self.origin.as_str()
            || claims["sub"] != SUBJECT
            || exp <= now
            || exp > now + 24 * 3600
        {
            return Err(format!("bad token {head} {claims}"));
        }
        let plain =
            webpush::decrypt(body, &browser.key, &browser.auth).map_err(|e| format!("{e:?}"))?;
        serde_json::from_slice(&plain).map_err(|_| "payload is not JSON".into())
    }
}

/// A node whose pushes go to `svc` (loopback allowed), grace `grace` seconds, window a
/// minute, and its VAPID public key given to the service.
pub(crate) fn node(
    db: &TestDb,
    svc: &PushService,
    grace: u64,
    tweak: impl FnOnce(&mut Config),
) -> Node {
    // (`tweak` runs last: it may set the key.)
    let n = start_with(db, |c| {
        c.push.vapid_private_key = webpush::key_to_b64(&webpush::generate_key());
        c.push.subject = SUBJECT.into();
        c.push.grace_secs = grace;
        c.push.window_secs = 60;
        c.push.allow_private_endpoints = true;
        tweak(c);
    });
    let (s, v) = request(&n.addr(), "GET", "/push/vapid-public-key", None, None);
    assert_eq!(s, 200, "{v}");
    *svc.vapid.lock().unwrap() = B64.decode(v["key"].as_str().unwrap()).unwrap();
    n
}

pub(crate) fn subscribe(addr: &str, u: &User, sub: &Value) {
    let (s, v) = request(
        addr,
        "POST",
        "/me/push-subscriptions",
        Some(&u.token),
        Some(sub),
    );
    assert_eq!(s, 201, "{v}");
}

/// A member with a subscription in `room`.
pub(crate) fn member(
    addr: &str,
    svc: &PushService,
    room: &str,
    name: &str,
) -> (User, Arc<Browser>) {
    let u = register(addr, name);
    join_room(addr, &u.token, room);
    let (b, sub) = svc.browser(name);
    subscribe(addr, &u, &sub);
    (u, b)
}

pub(crate) fn send(addr: &str, u: &User, room: &str, text: &str) -> i64 {
    let mut c = Http::connect(addr);
    post_message(&mut c, &u.token, room, text)["id"]
        .as_i64()
        .unwrap()
}

/// Waits until `b` has `n` pushes (at most `secs`), then returns them.
pub(crate) fn wait_pushes(svc: &PushService, b: &Browser, n: usize, secs: u64) -> Vec<Value> {
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        let got = svc.payloads(b);
        if got.len() >= n {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let bad = svc.bad.lock().unwrap().clone();
    panic!(
        "{} pushes of {n} within {secs} s (refused: {bad:?})",
        svc.payloads(b).len()
    );
}

/// Several messages to an offline member make one push carrying them all (its room,
/// count, ids, the latest text as preview), and the same as a `notification.offline`
/// webhook event; the sender, subscribed too, gets nothing. Fails if pushes are not
/// coalesced (two or three pushes), if the token or encryption is wrong (the service
/// refuses it and nothing arrives), if the sender is notified of its own messages, or
/// if the webhook event is missing.
#[test]
fn an_offline_member_gets_one_push_for_several_messages() {
    let db = TestDb::new();
    let svc = PushService::start();
    let hooks = Receiver::start(|_, _| Fault::None);
    let n = node(&db, &svc, 2, |c| {
        c.webhooks.push(WebhookConfig {
            name: "notify".into(),
            url: hooks.url.clone(),
            secret: SECRET.into(),
            events: vec!["notification.offline".into()],
            timeout_ms: 2000,
            ..WebhookConfig::default()
        })
    });
    let addr = n.addr();
    let alice = register(&addr, "alice");
    let room = create_room(&addr, &alice.token);
    let (alice_phone, alice_sub) = svc.browser("alice");
    subscribe(&addr, &alice, &alice_sub);
    let (bob, phone) = member(&addr, &svc, &room, "bob");
    let ids: Vec<i64> = ["one", "two", "three"]
        .iter()
        .map(|t| send(&addr, &alice, &room, &format!("message {t}")))
        .collect();
    let got = wait_pushes(&svc, &phone, 1, 15);
    std::thread::sleep(Duration::from_secs(2));
    let got_now = svc.payloads(&phone);
    assert_eq!(got_now.len(), 1, "one push, coalesced: {got_now:?}");
    let p = &got[0];
    assert_eq!(p["room_id"], room.as_str());
    assert_eq!(p["count"], 3, "{p}");
    assert_eq!(p["message_ids"], json!(ids));
    assert_eq!(p["preview"], "message three");
    assert!(
        svc.payloads(&alice_phone).is_empty(),
        "the sender is not notified"
    );
    assert!(svc.bad.lock().unwrap().is_empty());
    // The webhook event.
    let until = Instant::now() + Duration::from_secs(10);
    let event = loop {
        let log = hooks.log.lock().unwrap().clone();
        if let Some(e) = log
            .iter()
            .find(|g| g.json["type"] == "notification.offline")
        {
            break e.json.clone();
        }
        assert!(
            Instant::now() < until,
            "no notification.offline event: {log:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let d = &event["data"];
    assert_eq!(d["user_id"], bob.id.as_str());
    assert_eq!(d["room_id"], room.as_str());
    assert_eq!(
        (d["count"].clone(), d["message_ids"].clone()),
        (json!(3), json!(ids))
    );
    assert_eq!(d["preview"], "message three");
}

/// A member with a socket joined (on this node, so in cluster presence) is not pushed;
/// an offline member of the same room is. Fails if presence is not consulted.
#[test]
fn an_online_member_gets_no_push() {
    let db = TestDb::new();
    let svc = PushService::start();
    let n = node(&db, &svc, 1, |_| {});
    let addr = n.addr();
    let alice = register(&addr, "alice");
    let room = create_room(&addr, &alice.token);
    let (online, online_phone) = member(&addr, &svc, &room, "online");
    let (_, offline_phone) = member(&addr, &svc, &room, "offline");
    let mut ws = Ws::connect(&addr, &online.token);
    ws.join(&room, None);
    std::thread::sleep(Duration::from_millis(500)); // presence rows are written in batches
    send(&addr, &alice, &room, "hello");
    wait_pushes(&svc, &offline_phone, 1, 15);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        svc.payloads(&online_phone).is_empty(),
        "online member pushed"
    );
    drop(ws);
}

/// A member whose level in the room is `none` is not pushed; one at the default is.
/// Fails if levels are not consulted.
#[test]
fn level_none_gets_no_push() {
    let db = TestDb::new();
    let svc = PushService::start();
    let n = node(&db, &svc, 1, |_| {});
    let addr = n.addr();
    let alice = register(&addr, "alice");
    let room = create_room(&addr, &alice.token);
    let (quiet, quiet_phone) = member(&addr, &svc, &room, "quiet");
    let (_, loud_phone) = member(&addr, &svc, &room, "loud");
    let (s, v) = request(
        &addr,
        "PUT",
        &format!("/rooms/{room}/notifications"),
        Some(&quiet.token),
        Some(&json!({"level": "none"})),
    );
    assert_eq!(s, 200, "{v}");
    send(&addr, &alice, &room, "hello");
    wait_pushes(&svc, &loud_phone, 1, 15);
    std::thread::sleep(Duration::from_secs(2));
    assert!(svc.payloads(&quiet_phone).is_empty(), "level none pushed");
}

/// A member offline when the message is sent who connects within the grace is not
/// pushed; one who stays away is. Fails if the notifier decides when the message is
/// read from the stream rather than once the grace is over.
#[test]
fn a_member_back_within_the_grace_gets_no_push() {
    let db = TestDb::new();
    let svc = PushService::start();
    let n = node(&db, &svc, 3, |_| {});
    let addr = n.addr();
    let alice = register(&addr, "alice");
    let room = create_room(&addr, &alice.token);
    let (back, back_phone) = member(&addr, &svc, &room, "back");
    let (_, away_phone) = member(&addr, &svc, &room, "away");
    send(&addr, &alice, &room, "are you there?");
    std::thread::sleep(Duration::from_millis(500));
    let mut ws = Ws::connect(&addr, &back.token);
    ws.join(&room, Some(0));
    wait_pushes(&svc, &away_phone, 1, 15);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        svc.payloads(&back_phone).is_empty(),
        "member back within the grace pushed"
    );
    drop(ws);
}

/// A push service answering 410 Gone makes the server forget the subscription; the
/// others stay. Fails if the answer is ignored (the row stays).
#[test]
fn a_gone_subscription_is_removed() {
    let db = TestDb::new();
    let svc = PushService::start();
    let n = node(&db, &svc, 1, |_| {});
    let addr = n.addr();
    let alice = register(&addr, "alice");
    let room = create_room(&addr, &alice.token);
    let (bob, old_phone) = member(&addr, &svc, &room, "bob");
    let (new_phone, sub) = svc.browser("bob-new");
    subscribe(&addr, &bob, &sub);
    svc.gone.lock().unwrap().push(old_phone.path.clone());
    send(&addr, &alice, &room, "hello");
    wait_pushes(&svc, &new_phone, 1, 15);
    let mut c = db.client();
    let count = |c: &mut postgres::Client| -> i64 {
        c.query_one("SELECT count(*) FROM push_subscriptions", &[])
            .unwrap()
            .get(0)
    };
    let until = Instant::now() + Duration::from_secs(10);
    while count(&mut c) != 1 {
        assert!(
            Instant::now() < until,
            "the gone subscription is still there"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let left: String = c
        .query_one("SELECT endpoint FROM push_subscriptions", &[])
        .unwrap()
        .get(0);
    assert!(left.ends_with(&new_phone.path), "{left}");
    assert!(
        svc.payloads(&old_phone).len() == 1,
        "the gone one was tried once"
    );
}

/// Subscriptions are checked: https on a public address unless allowed, key lengths;
/// deleting answers 204 and removes it. Fails if an endpoint on loopback or over http
/// is taken (the server could be made to call internal services), or bad keys are.
#[test]
fn subscriptions_are_checked() {
    let db = TestDb::new();
    let n = start_with(&db, |c| {
        c.push.vapid_private_key = webpush::key_to_b64(&webpush::generate_key());
    });
    let addr = n.addr();
    let u = register(&addr, "sub");
    let key = B64.encode(webpush::public_point(&webpush::generate_key()));
    let auth = B64.encode([7u8; 16]);
    let post = |endpoint: &str, p256dh: &str, auth: &str| {
        let body = json!({"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": auth}});
        request(
            &addr,
            "POST",
            "/me/push-subscriptions",
            Some(&u.token),
            Some(&body),
        )
    };
    for endpoint in [
        "http://93.184.215.14/push/1",
        "https://127.0.0.1/push/1",
        "https://10.0.0.1/push/1",
        "https://[::1]:8443/push/1",
        "https://localhost/push/1",
        "not a url",
    ] {
        let (s, v) = post(endpoint, &key, &auth);
        assert_eq!(
            (s, v["code"].as_str()),
            (400, Some("validation_failed")),
            "{endpoint}: {v}"
        );
    }
    let good = "https://93.184.215.14/push/1";
    assert_eq!(post(good, &key[..40], &auth).0, 400, "short p256dh");
    assert_eq!(
        post(good, &key, &B64.encode([7u8; 15])).0,
        400,
        "short auth"
    );
    let (s, v) = post(good, &key, &auth);
    assert_eq!(s, 201, "{v}");
    let (s, _) = request(
        &addr,
        "POST",
        "/me/push-subscriptions",
        None,
        Some(&json!({})),
    );
    assert_eq!(s, 401);
    let r = raw_request(
        &addr,
        "DELETE",
        &format!(
            "/me/push-subscriptions?endpoint={}",
            "https%3A%2F%2F93.184.215.14%2Fpush%2F1"
        ),
        Some(&u.token),
        None,
    );
    assert_eq!(r.status, 204);
    let left: i64 = db
        .client()
        .query_one("SELECT count(*) FROM push_subscriptions", &[])
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}

/// A node stopped while a notification waits for its grace leaves it in the database:
/// the next node sends it, once. Fails if what is to be notified lives only in memory
/// (nothing arrives) or the cursor is not kept (the message is notified twice).
#[test]
fn a_restart_loses_no_notification_and_repeats_none() {
    let db = TestDb::new();
    let svc = PushService::start();
    let key = webpush::key_to_b64(&webpush::generate_key());
    let with_key = |key: String| move |c: &mut Config| c.push.vapid_private_key = key;
    let first = node(&db, &svc, 3, with_key(key.clone()));
    let addr = first.addr();
    let alice = register(&addr, "alice");
    let room = create_room(&addr, &alice.token);
    let (_, phone) = member(&addr, &svc, &room, "bob");
    let id = send(&addr, &alice, &room, "while you were out");
    // Wait until the notifier has taken the message from the stream, then stop.
    let mut c = db.client();
    let until = Instant::now() + Duration::from_secs(10);
    while c
        .query_one("SELECT count(*) FROM push_pending", &[])
        .unwrap()
        .get::<_, i64>(0)
        == 0
    {
        assert!(Instant::now() < until, "never pending");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(first);
    assert!(svc.payloads(&phone).is_empty(), "sent before its grace");
    let second = node(&db, &svc, 3, with_key(key));
    let got = wait_pushes(&svc, &phone, 1, 15);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(svc.payloads(&phone).len(), 1, "{:?}", svc.payloads(&phone));
    assert_eq!(
        (got[0]["count"].clone(), got[0]["message_ids"].clone()),
        (json!(1), json!([id]))
    );
    drop(second);
}
