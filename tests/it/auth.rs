//! Register, login, refresh rotation and reuse, logout, and token forgeries.

use crate::support::*;
use base64::Engine;
use serde_json::json;
use std::time::{Duration, Instant};

fn b64(s: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

#[test]
fn register_validates_and_refuses_duplicates() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let (s, b) = request(
        &a,
        "POST",
        "/auth/register",
        None,
        Some(&json!({"username": "ab", "email": "nope", "password": "short"})),
    );
    assert_eq!(s, 400);
    assert_eq!(b["code"], "validation_failed");
    assert_eq!(b["message"].as_array().unwrap().len(), 3, "{b}");
    let (s, b) = request(
        &a,
        "POST",
        "/auth/register",
        None,
        Some(&json!({"username": 5})),
    );
    assert_eq!(s, 400, "{b}");

    let body =
        json!({"username": "carol", "email": "Carol@Example.com", "password": "password123"});
    let (s, b) = request(&a, "POST", "/auth/register", None, Some(&body));
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["user"]["username"], "carol");
    assert_eq!(b["user"]["email"], "carol@example.com");
    assert!(b["user"]["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(b["tokens"]["refreshToken"].as_str().unwrap().len(), 64);
    // Same username: 409 and no tokens leak.
    let (s, b) = request(
        &a,
        "POST",
        "/auth/register",
        None,
        Some(&json!({"username": "carol", "email": "c2@example.com", "password": "password123"})),
    );
    assert_eq!((s, b["code"].as_str()), (409, Some("username_taken")));
    assert!(b.get("tokens").is_none());
    let (s, b) = request(
        &a,
        "POST",
        "/auth/register",
        None,
        Some(
            &json!({"username": "carol2", "email": "CAROL@example.com", "password": "password123"}),
        ),
    );
    assert_eq!((s, b["code"].as_str()), (409, Some("email_taken")));
}

#[test]
fn login_answers_the_same_for_unknown_email_and_wrong_password() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let u = register(&a, "dave");
    let email = format!("{}@example.com", u.username);
    let (s, b) = request(
        &a,
        "POST",
        "/auth/login",
        None,
        Some(&json!({"email": email, "password": "password123", "deviceInfo": "test"})),
    );
    assert!(s == 201 || s == 200, "{b}");
    assert_eq!(b["user"]["id"], u.id.as_str());
    let token = b["tokens"]["accessToken"].as_str().unwrap();
    assert_eq!(request(&a, "GET", "/rooms", Some(token), None).0, 200);
    let wrong = request(
        &a,
        "POST",
        "/auth/login",
        None,
        Some(&json!({"email": email, "password": "password124"})),
    );
    let unknown = request(
        &a,
        "POST",
        "/auth/login",
        None,
        Some(&json!({"email": "ghost@example.com", "password": "password123"})),
    );
    assert_eq!(wrong.0, 401);
    assert_eq!(wrong, unknown);
    assert_eq!(wrong.1["message"], "Invalid credentials");
    assert_eq!(
        request(&a, "POST", "/auth/login", None, Some(&json!({}))).0,
        400
    );
}

/// Median of `xs` (sorted in place).
fn median(xs: &mut [Duration]) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

/// Fails if an unknown email skips the password verification (login would answer in a
/// database round trip instead of an argon2 run): shown by making
/// `Hasher::verify` return `false` at once when there is no stored hash, which put the
/// unknown-email median at the no-hash baseline and the ratio far below 0.7.
#[test]
fn login_takes_as_long_for_an_unknown_email_as_for_a_wrong_password() {
    let db = TestDb::new();
    // Costly enough that one argon2 run dwarfs a request's other work (the test config's
    // 1 MiB, 1 pass would not), with the login limits off for the many samples.
    let node = start_with(&db, |c| {
        c.auth.argon2_memory_kib = 8192;
        c.auth.argon2_iterations = 2;
        c.limits.login_per_ip_per_min = 0;
        c.limits.login_per_account_ip_per_min = 0;
        c.limits.login_per_account_per_min = 0;
    });
    let a = node.addr();
    let u = register(&a, "tim");
    let email = format!("{}@example.com", u.username);
    let time = |body: &serde_json::Value, want: u16| {
        let t = Instant::now();
        let (s, b) = request(&a, "POST", "/auth/login", None, Some(body));
        let took = t.elapsed();
        assert_eq!(s, want, "{b}");
        took
    };
    let wrong_body = json!({"email": email, "password": "password124"});
    let unknown_body = json!({"email": "nobody-here@example.com", "password": "password124"});
    // Refused on the same queue before any lookup or hash (no password): the cost of a
    // login without argon2.
    let baseline_body = json!({"email": "nobody-here@example.com"});
    for _ in 0..3 {
        time(&wrong_body, 401);
        time(&unknown_body, 401);
    }
    let n = 40;
    let (mut wrong, mut unknown, mut baseline) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        // Interleaved, alternating which goes first, so drift hits both alike.
        if i % 2 == 0 {
            wrong.push(time(&wrong_body, 401));
            unknown.push(time(&unknown_body, 401));
        } else {
            unknown.push(time(&unknown_body, 401));
            wrong.push(time(&wrong_body, 401));
        }
        baseline.push(time(&baseline_body, 400));
    }
    let (w, un, base) = (
        median(&mut wrong),
        median(&mut unknown),
        median(&mut baseline),
    );
    // The measurement can tell: without a hash a login is much faster.
    assert!(
        base * 2 < w,
        "argon2 does not dominate a login: baseline {base:?}, wrong password {w:?}"
    );
    let ratio = un.as_secs_f64() / w.as_secs_f64();
    eprintln!("login medians: unknown {un:?}, wrong {w:?}, baseline {base:?}, ratio {ratio:.2}");
    assert!(
        (0.7..=1.4).contains(&ratio),
        "unknown email median {un:?} vs wrong password median {w:?} (ratio {ratio:.2}; baseline {base:?})"
    );
}

#[test]
fn refresh_rotates_and_reuse_revokes_the_session() {
    let db = TestDb::new();
    // No grace window: a token presented again after its rotation is theft at once
    // (tests/it/hardening.rs covers parallel refreshes within the window).
    let node = start_with(&db, |c| c.auth.refresh_grace_secs = 0);
    let a = node.addr();
    let u = register(&a, "erin");
    let (s, b) = request(
        &a,
        "POST",
        "/auth/refresh",
        None,
        Some(&json!({"refreshToken": u.refresh})),
    );
    assert_eq!(s, 201, "{b}");
    let second = b["tokens"]["refreshToken"].as_str().unwrap().to_string();
    let access2 = b["tokens"]["accessToken"].as_str().unwrap().to_string();
    assert_ne!(second, u.refresh);
    assert_eq!(request(&a, "GET", "/rooms", Some(&access2), None).0, 200);
    // The old token again: refused, and the whole session is revoked.
    let (s, b) = request(
        &a,
        "POST",
        "/auth/refresh",
        None,
        Some(&json!({"refreshToken": u.refresh})),
    );
    assert_eq!((s, b["code"].as_str()), (401, Some("invalid_token")));
    assert_eq!(
        request(
            &a,
            "POST",
            "/auth/refresh",
            None,
            Some(&json!({"refreshToken": second}))
        )
        .0,
        401
    );
    assert_eq!(request(&a, "GET", "/rooms", Some(&access2), None).0, 401);
    assert_eq!(
        request(
            &a,
            "POST",
            "/auth/refresh",
            None,
            Some(&json!({"refreshToken": "x".repeat(64)}))
        )
        .0,
        401
    );
    // The refresh token is stored only as a keyed hash: not as itself, not as its plain
    // SHA-256, but as SHA-256 of the refresh secret and the token. (Fails if the key is
    // left out: shown by hashing the token alone in `refresh_hash`.)
    let count = |hash: Vec<u8>| -> i64 {
        db.client()
            .query_one(
                "SELECT count(*) FROM refresh_tokens WHERE token_hash = $1",
                &[&hash],
            )
            .unwrap()
            .get(0)
    };
    let rows: i64 = db
        .client()
        .query_one(
            "SELECT count(*) FROM refresh_tokens WHERE encode(token_hash, 'hex') = $1",
            &[&second],
        )
        .unwrap()
        .get(0);
    assert_eq!(rows, 0);
    use sha2::{Digest, Sha256};
    assert_eq!(count(Sha256::digest(second.as_bytes()).to_vec()), 0);
    let mut keyed = Sha256::new();
    keyed.update(b"test-refresh-secret-0123456789abcdef");
    keyed.update(second.as_bytes());
    assert_eq!(count(keyed.finalize().to_vec()), 1);
}

/// Password hashing runs on the auth workers, never on an event loop: with one loop and
/// a costly argon2, `/health` answers at once while logins hash one after another.
/// Fails if hashing runs on the loop: shown by verifying a dummy hash on the loop in
/// `http::api::login` before queueing the job (a `/health` took 490 ms).
#[test]
fn password_hashing_never_blocks_an_event_loop() {
    let db = TestDb::new();
    let node = start_with(&db, |c| {
        c.server.event_loops = 1;
        c.auth.auth_workers = 1;
        c.auth.argon2_memory_kib = 65536;
        c.auth.argon2_iterations = 3;
        c.limits.login_per_ip_per_min = 0;
        c.limits.login_per_account_ip_per_min = 0;
        c.limits.login_per_account_per_min = 0;
    });
    let a = node.addr();
    let u = register(&a, "hash");
    let wrong = json!({"email": format!("{}@example.com", u.username), "password": "password124"});
    let t = Instant::now();
    assert_eq!(
        request(&a, "POST", "/auth/login", None, Some(&wrong)).0,
        401
    );
    let one_hash = t.elapsed();
    assert!(
        one_hash >= Duration::from_millis(40),
        "argon2 too cheap to tell: {one_hash:?}"
    );
    let logins: Vec<_> = (0..4)
        .map(|_| {
            let (a, body) = (a.clone(), wrong.clone());
            std::thread::spawn(move || request(&a, "POST", "/auth/login", None, Some(&body)).0)
        })
        .collect();
    std::thread::sleep(one_hash / 4);
    let mut slowest = Duration::ZERO;
    let window = Instant::now();
    while window.elapsed() < one_hash * 2 {
        let t = Instant::now();
        assert_eq!(request(&a, "GET", "/health", None, None).0, 200);
        slowest = slowest.max(t.elapsed());
        std::thread::sleep(one_hash / 8);
    }
    for l in logins {
        assert_eq!(l.join().unwrap(), 401);
    }
    assert!(
        slowest < one_hash / 3,
        "/health took {slowest:?} while logins hashed (one hash {one_hash:?})"
    );
}

#[test]
fn logout_revokes_one_or_all_sessions() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let u = register(&a, "fay");
    let email = format!("{}@example.com", u.username);
    let (_, b) = request(
        &a,
        "POST",
        "/auth/login",
        None,
        Some(&json!({"email": email, "password": "password123"})),
    );
    let other = b["tokens"]["accessToken"].as_str().unwrap().to_string();
    let other_refresh = b["tokens"]["refreshToken"].as_str().unwrap().to_string();
    assert_eq!(request(&a, "POST", "/auth/logout", None, None).0, 401);
    let (s, b) = request(
        &a,
        "POST",
        "/auth/logout",
        Some(&u.token),
        Some(&json!({"sessionId": "not-a-uuid"})),
    );
    assert_eq!(s, 400, "{b}");
    // Log out the first session only.
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(u.token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    let (s, b) = request(
        &a,
        "POST",
        "/auth/logout",
        Some(&u.token),
        Some(&json!({"sessionId": claims["sid"]})),
    );
    assert_eq!((s, b), (201, json!({"success": true})));
    assert_eq!(request(&a, "GET", "/rooms", Some(&u.token), None).0, 401);
    assert_eq!(request(&a, "GET", "/rooms", Some(&other), None).0, 200);
    assert_eq!(
        request(
            &a,
            "POST",
            "/auth/refresh",
            None,
            Some(&json!({"refreshToken": u.refresh}))
        )
        .0,
        401
    );
    // Then all of them.
    assert_eq!(
        request(&a, "POST", "/auth/logout", Some(&other), None).0,
        201
    );
    assert_eq!(request(&a, "GET", "/rooms", Some(&other), None).0, 401);
    assert_eq!(
        request(
            &a,
            "POST",
            "/auth/refresh",
            None,
            Some(&json!({"refreshToken": other_refresh}))
        )
        .0,
        401
    );
}

/// `alg: none`, an HS512 header over an HS256 signature, a tampered payload, another
/// key, an expired token, the opaque refresh token and garbage are refused on REST and on
/// the WebSocket upgrade (token in the query string or in the header).
/// Fails if the upgrade accepts an expired token: shown by turning off `validate_exp` in
/// `TokenKeys::new` (the upgrade is checked before REST: "expired on the upgrade: left:
/// Some(101), right: Some(401)").
#[test]
fn forged_and_malformed_tokens_are_refused() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let u = register(&a, "gus");
    let parts: Vec<&str> = u.token.split('.').collect();
    let none = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), parts[1]);
    // An HS512 header over the HS256 signature (really signed HS384/HS512 tokens are in
    // `tokens_signed_with_the_access_key_but_another_algorithm_or_kind_are_refused`).
    let hs512 = format!(
        "{}.{}.{}",
        b64(r#"{"alg":"HS512","typ":"JWT"}"#),
        parts[1],
        parts[2]
    );
    let tampered_claims = b64(&String::from_utf8(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap(),
    )
    .unwrap()
    .replace("gus", "admin"));
    let tampered = format!("{}.{}.{}", parts[0], tampered_claims, parts[2]);
    let other_key = {
        let keys = chatd::auth::tokens::TokenKeys::new(b"some-other-secret", b"r", 60, 60).unwrap();
        keys.issue_access(
            uuid::Uuid::parse_str(&u.id).unwrap(),
            &u.username,
            uuid::Uuid::now_v7(),
        )
    };
    let expired = {
        let keys = chatd::auth::tokens::TokenKeys::new(
            b"test-access-secret-0123456789abcdef",
            b"r",
            0,
            60,
        )
        .unwrap();
        let t = keys.issue_access(
            uuid::Uuid::parse_str(&u.id).unwrap(),
            &u.username,
            uuid::Uuid::now_v7(),
        );
        std::thread::sleep(std::time::Duration::from_millis(1100));
        t
    };
    for (what, t) in [
        ("none", none),
        ("hs512 header, hs256 signature", hs512),
        ("tampered", tampered),
        ("other key", other_key),
        ("expired", expired),
        ("opaque refresh token as access", u.refresh.clone()),
        ("garbage", "abc".into()),
    ] {
        assert_eq!(upgrade_status(&a, &t), Some(401), "{what} on the upgrade");
        assert_eq!(
            upgrade_with_header(&a, &t),
            Some(401),
            "{what} on the upgrade, in the Authorization header"
        );
        let (s, b) = request(&a, "GET", "/rooms", Some(&t), None);
        assert_eq!(s, 401, "{what}: {b}");
    }
    // The controls: the genuine token passes both ways.
    assert_eq!(upgrade_status(&a, &u.token), Some(101));
    assert_eq!(upgrade_with_header(&a, &u.token), Some(101));
    let mut c = Http::connect(&a);
    c.send_raw(b"GET /rooms HTTP/1.1\r\nAuthorization: Basic Zm9vOmJhcg==\r\n\r\n");
    assert_eq!(c.read().unwrap().status, 401);
}

/// The status of a WebSocket upgrade with `token` in the Authorization header.
fn upgrade_with_header(addr: &str, token: &str) -> Option<u16> {
    let mut c = Http::connect(addr);
    c.send_raw(
        format!(
            "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
        )
        .as_bytes(),
    );
    c.read().map(|r| r.status)
}

/// The status of a WebSocket upgrade with `token` in the query string.
fn upgrade_status(addr: &str, token: &str) -> Option<u16> {
    let mut c = Http::connect(addr);
    c.send_raw(
        format!(
            "GET /ws?token={token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        )
        .as_bytes(),
    );
    c.read().map(|r| r.status)
}

/// Tokens really signed with the server's access key, differing from a genuine one only
/// in their algorithm (HS384, HS512) or their kind (`typ: "refresh"`, no `typ`), are
/// refused on REST and on the WebSocket upgrade; the same claims signed HS256 as an
/// access token are accepted (so only the algorithm or the kind is refused).
/// Fails if `verify_access` accepts another HMAC algorithm: shown by setting
/// `validation.algorithms = vec![HS256, HS384, HS512]` in `TokenKeys::new` (HS384 and
/// HS512 then answered 200 and 101). Fails if the kind is not checked: shown by removing
/// `if c.typ != "access"` from `verify_access` (the refresh-typed JWT answered 200).
#[test]
fn tokens_signed_with_the_access_key_but_another_algorithm_or_kind_are_refused() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let u = register(&a, "alg");
    let genuine: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(u.token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    let key = EncodingKey::from_secret(b"test-access-secret-0123456789abcdef").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = |typ: Option<&str>| {
        let mut c = json!({
            "sub": u.id, "username": u.username, "sid": genuine["sid"],
            "iat": now, "exp": now + 600,
        });
        if let Some(t) = typ {
            c["typ"] = json!(t);
        }
        c
    };
    let sign = |alg: Algorithm, typ: Option<&str>| {
        jsonwebtoken::encode(&Header::new(alg), &claims(typ), &key).unwrap()
    };
    // The control: built the same way, HS256 and "access", it is a valid token.
    let control = sign(Algorithm::HS256, Some("access"));
    assert_eq!(request(&a, "GET", "/rooms", Some(&control), None).0, 200);
    assert_eq!(upgrade_status(&a, &control), Some(101));
    for (what, t) in [
        ("HS384", sign(Algorithm::HS384, Some("access"))),
        ("HS512", sign(Algorithm::HS512, Some("access"))),
        ("typ refresh", sign(Algorithm::HS256, Some("refresh"))),
        ("no typ", sign(Algorithm::HS256, None)),
    ] {
        let header: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(t.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert!(header["alg"].is_string(), "{what}: {header}");
        let (s, b) = request(&a, "GET", "/rooms", Some(&t), None);
        assert_eq!(s, 401, "{what} on REST: {b}");
        assert_eq!(upgrade_status(&a, &t), Some(401), "{what} on the upgrade");
    }
}
