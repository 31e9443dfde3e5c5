//! Register, login, refresh rotation and reuse, logout, and token forgeries.

mod support;

use base64::Engine;
use serde_json::json;
use support::*;

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

#[test]
fn refresh_rotates_and_reuse_revokes_the_session() {
    let db = TestDb::new();
    // No grace window: a token presented again after its rotation is theft at once
    // (tests/hardening.rs covers parallel refreshes within the window).
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
    // The refresh token is stored only as a hash.
    let rows: i64 = db
        .client()
        .query_one(
            "SELECT count(*) FROM refresh_tokens WHERE encode(token_hash, 'hex') = $1",
            &[&second],
        )
        .unwrap()
        .get(0);
    assert_eq!(rows, 0);
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

#[test]
fn forged_and_malformed_tokens_are_refused() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let u = register(&a, "gus");
    let parts: Vec<&str> = u.token.split('.').collect();
    let none = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), parts[1]);
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
        ("hs512", hs512),
        ("tampered", tampered),
        ("other key", other_key),
        ("expired", expired),
        ("refresh as access", u.refresh.clone()),
        ("garbage", "abc".into()),
    ] {
        let (s, b) = request(&a, "GET", "/rooms", Some(&t), None);
        assert_eq!(s, 401, "{what}: {b}");
    }
    let mut c = Http::connect(&a);
    c.send_raw(b"GET /rooms HTTP/1.1\r\nAuthorization: Basic Zm9vOmJhcg==\r\n\r\n");
    assert_eq!(c.read().unwrap().status, 401);
}
