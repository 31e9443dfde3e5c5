//! The web app's refresh cookie (PROTOCOL.md 3.1): opted in with
//! `X-Chatd-Refresh-Cookie: 1`, the refresh token travels only in an HttpOnly cookie
//! scoped to /auth; rotation, reuse, logout and malformed cookies; the body flow unchanged.

use crate::support::*;
use base64::Engine;
use serde_json::{Value, json};

const OPT_IN: (&str, &[u8]) = ("X-Chatd-Refresh-Cookie", b"1");
/// 30 days, the default `auth.refresh_ttl_secs`.
const MAX_AGE: u64 = 30 * 24 * 3600;

/// One request with extra header lines (raw bytes: a test may send what is not UTF-8).
fn call(
    addr: &str,
    path: &str,
    headers: &[(&str, &[u8])],
    token: Option<&str>,
    body: Option<&Value>,
) -> Resp {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    )
    .into_bytes();
    if let Some(t) = token {
        req.extend_from_slice(format!("Authorization: Bearer {t}\r\n").as_bytes());
    }
    for (name, value) in headers {
        req.extend_from_slice(name.as_bytes());
        req.extend_from_slice(b": ");
        req.extend_from_slice(value);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(body.as_bytes());
    let mut c = Http::connect(addr);
    c.send_raw(&req);
    c.read().expect("a response")
}

/// The `Cookie` header's value carrying `token`.
fn jar(token: &str) -> String {
    format!("chatd_refresh={token}")
}

/// The token of a `Set-Cookie: chatd_refresh=<token>; ...` answer, checking every
/// attribute exactly.
fn cookie_token(r: &Resp, max_age: u64) -> String {
    let set = r.header("set-cookie").expect("a Set-Cookie header");
    let (pair, attrs) = set.split_once("; ").unwrap();
    assert_eq!(
        attrs,
        format!("HttpOnly; Secure; SameSite=Strict; Path=/auth; Max-Age={max_age}")
    );
    let token = pair.strip_prefix("chatd_refresh=").unwrap().to_string();
    if max_age > 0 {
        assert!(
            token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()),
            "{set}"
        );
    }
    token
}

/// The cookie-mode answer: 201, an access token, no refresh token in the body.
fn signed_by_cookie(r: &Resp) -> (String, String) {
    let b = r.json();
    assert_eq!(r.status, 201, "{b}");
    assert!(b["tokens"].get("refreshToken").is_none(), "{b}");
    let text = String::from_utf8_lossy(&r.body).to_string();
    let token = cookie_token(r, MAX_AGE);
    assert!(!text.contains(&token), "the body names the cookie's token");
    (b["tokens"]["accessToken"].as_str().unwrap().into(), token)
}

fn sid(access: &str) -> String {
    let part = access.split('.').nth(1).unwrap();
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    let claims: Value = serde_json::from_slice(&claims).unwrap();
    claims["sid"].as_str().unwrap().into()
}

fn register_body(name: &str) -> Value {
    json!({"username": name, "email": format!("{name}@example.com"), "password": "password123"})
}

#[test]
fn register_and_login_put_the_token_in_the_cookie_only() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let r = call(
        &a,
        "/auth/register",
        &[OPT_IN],
        None,
        Some(&register_body("coco")),
    );
    let (access, _) = signed_by_cookie(&r);
    assert_eq!(r.json()["user"]["username"], "coco");
    assert_eq!(request(&a, "GET", "/rooms", Some(&access), None).0, 200);
    let login = json!({"email": "coco@example.com", "password": "password123"});
    let r = call(&a, "/auth/login", &[OPT_IN], None, Some(&login));
    let (access, _) = signed_by_cookie(&r);
    assert_eq!(request(&a, "GET", "/rooms", Some(&access), None).0, 200);
    // Without the header (or with another value): the body flow, no cookie.
    for headers in [&[][..], &[("X-Chatd-Refresh-Cookie", &b"true"[..])][..]] {
        let r = call(&a, "/auth/login", headers, None, Some(&login));
        assert_eq!(r.status, 201);
        assert_eq!(
            r.json()["tokens"]["refreshToken"].as_str().unwrap().len(),
            64
        );
        assert!(r.header("set-cookie").is_none());
    }
    // A refusal sets no cookie.
    let wrong = json!({"email": "coco@example.com", "password": "password124"});
    let r = call(&a, "/auth/login", &[OPT_IN], None, Some(&wrong));
    assert_eq!(r.status, 401);
    assert!(r.header("set-cookie").is_none());
}

#[test]
fn refresh_by_cookie_rotates_and_a_reused_cookie_revokes_the_session() {
    let db = TestDb::new();
    let node = start_with(&db, |c| c.auth.refresh_grace_secs = 0);
    let a = node.addr();
    let r = call(
        &a,
        "/auth/register",
        &[OPT_IN],
        None,
        Some(&register_body("dodo")),
    );
    let (_, first) = signed_by_cookie(&r);
    // No body at all, and an empty object: the cookie is read.
    let r = call(
        &a,
        "/auth/refresh",
        &[OPT_IN, ("Cookie", jar(&first).as_bytes())],
        None,
        None,
    );
    let (access2, second) = signed_by_cookie(&r);
    assert_ne!(second, first);
    assert_eq!(request(&a, "GET", "/rooms", Some(&access2), None).0, 200);
    let r = call(
        &a,
        "/auth/refresh",
        &[OPT_IN, ("Cookie", jar(&second).as_bytes())],
        None,
        Some(&json!({})),
    );
    let (access3, third) = signed_by_cookie(&r);
    // The rotated-away cookie again: refused, cleared, and the session is revoked.
    let r = call(
        &a,
        "/auth/refresh",
        &[OPT_IN, ("Cookie", jar(&second).as_bytes())],
        None,
        None,
    );
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (401, Some("invalid_token"))
    );
    assert_eq!(cookie_token(&r, 0), "");
    let r = call(
        &a,
        "/auth/refresh",
        &[OPT_IN, ("Cookie", jar(&third).as_bytes())],
        None,
        None,
    );
    assert_eq!(r.status, 401, "the newest cookie dies with its session");
    assert_eq!(request(&a, "GET", "/rooms", Some(&access3), None).0, 401);
}

#[test]
fn a_cookie_without_the_header_is_refused_and_left_usable() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let r = call(
        &a,
        "/auth/register",
        &[OPT_IN],
        None,
        Some(&register_body("emu")),
    );
    let (_, token) = signed_by_cookie(&r);
    let cookie = jar(&token);
    // What a form of another site could send, were SameSite not enough: no header.
    let r = call(
        &a,
        "/auth/refresh",
        &[("Cookie", cookie.as_bytes())],
        None,
        None,
    );
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (401, Some("refresh_cookie_header_required"))
    );
    assert!(r.header("set-cookie").is_none());
    // Nothing was rotated: the cookie still works with the header.
    let r = call(
        &a,
        "/auth/refresh",
        &[OPT_IN, ("Cookie", cookie.as_bytes())],
        None,
        None,
    );
    signed_by_cookie(&r);
    // The browser's preflight never lets another origin send the header.
    let mut c = Http::connect(&a);
    c.send_raw(b"OPTIONS /auth/refresh HTTP/1.1\r\nHost: t\r\nOrigin: http://evil.example\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: x-chatd-refresh-cookie\r\n\r\n");
    let pre = c.read().unwrap();
    let allowed = pre.header("access-control-allow-headers").unwrap_or("");
    assert!(
        !allowed.to_lowercase().contains("x-chatd-refresh-cookie"),
        "{allowed}"
    );
}

#[test]
fn malformed_cookie_headers_are_absent_never_an_error() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let r = call(
        &a,
        "/auth/register",
        &[OPT_IN],
        None,
        Some(&register_body("finch")),
    );
    let (_, token) = signed_by_cookie(&r);
    let bad: &[&[u8]] = &[
        b"",
        b";;;",
        b"chatd_refresh",
        b"chatd_refresh=",
        b"chatd_refresh=\"\"",
        b"chatd_refresh=a b c",
        b"chatd_refresh=\xff\xfe",
        b"\xff=\xff; chatd_refresh=\x80",
        b"chatd_refresh=x\\y",
        b"=; ==; chatd_refresh==",
    ];
    for value in bad {
        let r = call(
            &a,
            "/auth/refresh",
            &[OPT_IN, ("Cookie", value)],
            None,
            None,
        );
        assert_eq!(
            (r.status, r.json()["code"].as_str()),
            (401, Some("invalid_token")),
            "{}",
            String::from_utf8_lossy(value)
        );
    }
    let huge = format!("chatd_refresh={}", "a".repeat(4000));
    let r = call(
        &a,
        "/auth/refresh",
        &[OPT_IN, ("Cookie", huge.as_bytes())],
        None,
        None,
    );
    assert_eq!(r.status, 401);
    // The token among other cookies, spaces and junk, and in a second Cookie header.
    let mixed = format!("theme=dark;  junk ; chatd_refresh = {token} ; x=\u{e9}");
    let r = call(
        &a,
        "/auth/refresh",
        &[OPT_IN, ("Cookie", mixed.as_bytes())],
        None,
        None,
    );
    let (_, token) = signed_by_cookie(&r);
    let second = format!("chatd_refresh={token}");
    let r = call(
        &a,
        "/auth/refresh",
        &[
            OPT_IN,
            ("Cookie", b"a=1; b=\xff"),
            ("Cookie", second.as_bytes()),
        ],
        None,
        None,
    );
    signed_by_cookie(&r);
}

#[test]
fn logout_ends_the_cookie_session_and_clears_the_cookie() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let r = call(
        &a,
        "/auth/register",
        &[OPT_IN],
        None,
        Some(&register_body("gull")),
    );
    let (access, token) = signed_by_cookie(&r);
    // The same user on another device, by the body flow.
    let login = json!({"email": "gull@example.com", "password": "password123"});
    let (_, other) = request(&a, "POST", "/auth/login", None, Some(&login));
    let other_refresh = other["tokens"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_string();
    let cookie = jar(&token);
    let r = call(
        &a,
        "/auth/logout",
        &[OPT_IN, ("Cookie", cookie.as_bytes())],
        Some(&access),
        Some(&json!({"sessionId": sid(&access)})),
    );
    assert_eq!(r.status, 201, "{}", r.json());
    assert_eq!(cookie_token(&r, 0), "");
    let r = call(
        &a,
        "/auth/refresh",
        &[OPT_IN, ("Cookie", cookie.as_bytes())],
        None,
        None,
    );
    assert_eq!(r.status, 401);
    assert_eq!(request(&a, "GET", "/rooms", Some(&access), None).0, 401);
    // The other device's session lives on.
    let (s, _) = request(
        &a,
        "POST",
        "/auth/refresh",
        None,
        Some(&json!({"refreshToken": other_refresh})),
    );
    assert_eq!(s, 201);

    // The cookie's session ends even when the body names another one of the caller's;
    // another user's cookie is not the caller's to end.
    let r = call(&a, "/auth/login", &[OPT_IN], None, Some(&login));
    let (_, mine) = signed_by_cookie(&r);
    let (_, third) = request(&a, "POST", "/auth/login", None, Some(&login));
    let third = third["tokens"]["accessToken"].as_str().unwrap().to_string();
    let r = call(
        &a,
        "/auth/register",
        &[OPT_IN],
        None,
        Some(&register_body("heron")),
    );
    let (_, theirs) = signed_by_cookie(&r);
    for (cookie, ends) in [(&theirs, false), (&mine, true)] {
        let c = jar(cookie);
        let r = call(
            &a,
            "/auth/logout",
            &[OPT_IN, ("Cookie", c.as_bytes())],
            Some(&third),
            Some(&json!({"sessionId": "00000000-0000-7000-8000-000000000000"})),
        );
        assert_eq!(r.status, 201);
        let r = call(
            &a,
            "/auth/refresh",
            &[OPT_IN, ("Cookie", c.as_bytes())],
            None,
            None,
        );
        assert_eq!(r.status == 401, ends, "{cookie}");
    }
    // Without the header, logout is as before: no cookie read, none cleared.
    let r = call(&a, "/auth/logout", &[], Some(&third), None);
    assert_eq!(r.status, 201);
    assert!(r.header("set-cookie").is_none());
}

#[test]
fn the_body_token_wins_and_the_body_flow_is_unchanged() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let u = register(&a, "ibis");
    let r = call(
        &a,
        "/auth/register",
        &[OPT_IN],
        None,
        Some(&register_body("jay")),
    );
    let (_, cookie_token) = signed_by_cookie(&r);
    let cookie = jar(&cookie_token);
    // Body flow, a stray cookie present: the body's token, the answer as always.
    let r = call(
        &a,
        "/auth/refresh",
        &[("Cookie", cookie.as_bytes())],
        None,
        Some(&json!({"refreshToken": u.refresh})),
    );
    assert_eq!(r.status, 201);
    let next = r.json()["tokens"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(next.len(), 64);
    assert!(r.header("set-cookie").is_none());
    assert_eq!(r.json()["user"]["username"], u.username);
    // A stored token moved into the cookie: the body's, answered as a cookie.
    let r = call(
        &a,
        "/auth/refresh",
        &[OPT_IN, ("Cookie", cookie.as_bytes())],
        None,
        Some(&json!({"refreshToken": next})),
    );
    let (_, moved) = signed_by_cookie(&r);
    assert_eq!(r.json()["user"]["username"], u.username);
    assert_ne!(moved, cookie_token);
    // The cookie's own token was not touched.
    let r = call(
        &a,
        "/auth/refresh",
        &[OPT_IN, ("Cookie", cookie.as_bytes())],
        None,
        None,
    );
    assert_eq!(r.json()["user"]["username"], "jay");
    // No token anywhere, no header: the validation error of old.
    let (s, b) = request(&a, "POST", "/auth/refresh", None, Some(&json!({})));
    assert_eq!((s, b["code"].as_str()), (400, Some("validation_failed")));
    assert_eq!(b["message"][0], "refreshToken should not be empty");
}

#[test]
fn plain_http_deployments_may_drop_secure() {
    let db = TestDb::new();
    let node = start_with(&db, |c| {
        c.http.refresh_cookie_secure = false;
        c.auth.refresh_ttl_secs = 3600;
    });
    let r = call(
        &node.addr(),
        "/auth/register",
        &[OPT_IN],
        None,
        Some(&register_body("kite")),
    );
    assert_eq!(r.status, 201);
    let set = r.header("set-cookie").unwrap();
    assert!(set.starts_with("chatd_refresh="), "{set}");
    assert!(
        set.ends_with("; HttpOnly; SameSite=Strict; Path=/auth; Max-Age=3600"),
        "{set}"
    );
}
