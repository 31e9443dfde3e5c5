//! POST /auth/register, /auth/login, /auth/refresh, /auth/logout (run on worker threads).

use crate::auth::tokens::Identity;
use crate::error::{ApiError, is_unique_violation};
use crate::http::body::{Body, finish, valid_email};
use crate::http::response::Response;
use crate::pg::EVENTS_CHANNEL;
use crate::pg::pool::Worker;
use crate::shared::Shared;
use chrono::{DateTime, Utc};
use postgres::GenericClient;
use serde_json::json;
use uuid::Uuid;

const INVALID_CREDENTIALS: ApiError =
    ApiError::Unauthorized("invalid_credentials", "Invalid credentials");
const INVALID_REFRESH: ApiError =
    ApiError::Unauthorized("invalid_token", "Invalid or expired refresh token");

fn user_json(
    id: Uuid,
    username: &str,
    email: &str,
    created_at: DateTime<Utc>,
) -> serde_json::Value {
    json!({
        "id": id,
        "username": username,
        "email": email,
        "created_at": crate::chat::messages::iso(created_at),
    })
}

/// Opens a session and returns its tokens as JSON.
fn open_session(
    c: &mut impl GenericClient,
    shared: &Shared,
    user_id: Uuid,
    username: &str,
    device: Option<&str>,
) -> Result<serde_json::Value, ApiError> {
    let session = Uuid::now_v7();
    let ttl = shared.keys.refresh_ttl as f64;
    c.execute(
        "INSERT INTO sessions (id, user_id, device_info, expires_at)
         VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
        &[&session, &user_id, &device, &ttl],
    )?;
    let refresh = shared.keys.new_refresh();
    c.execute(
        "INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)",
        &[&shared.keys.refresh_hash(&refresh), &session],
    )?;
    Ok(json!({
        "accessToken": shared.keys.issue_access(user_id, username, session),
        "refreshToken": refresh,
    }))
}

/// POST /auth/register
pub fn register(w: &mut Worker, shared: &Shared, body: &[u8]) -> Result<Response, ApiError> {
    let body = Body::parse(body)?;
    let mut errs = Vec::new();
    let username = body.req_str("username", &mut errs);
    let email = body.req_str("email", &mut errs).to_lowercase();
    let password = body.req_str("password", &mut errs);
    let n = username.chars().count();
    if !(3..=50).contains(&n) {
        errs.push("username must be 3 to 50 characters".into());
    } else if username.chars().any(|c| c.is_control()) {
        errs.push("username must not contain control characters".into());
    }
    if !valid_email(&email) {
        errs.push("email must be an email".into());
    }
    if !(8..=1024).contains(&password.chars().count()) {
        errs.push("password must be 8 to 1024 characters".into());
    }
    finish(errs)?;
    let hash = shared.hasher.hash(&password).map_err(|e| {
        log::error!("{e}");
        ApiError::Internal
    })?;
    let c = w.client()?;
    let mut tx = c.transaction()?;
    let id = Uuid::now_v7();
    let row = tx.query_one(
        "INSERT INTO users (id, username, email, password_hash) VALUES ($1, $2, $3, $4)
         RETURNING created_at",
        &[&id, &username, &email, &hash],
    );
    let created: DateTime<Utc> = match row {
        Ok(r) => r.get(0),
        Err(e) if is_unique_violation(&e, "users_username_key") => {
            return Err(ApiError::Conflict(
                "username_taken",
                "Username already taken",
            ));
        }
        Err(e) if is_unique_violation(&e, "users_email_key") => {
            return Err(ApiError::Conflict(
                "email_taken",
                "Email already registered",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let tokens = open_session(&mut tx, shared, id, &username, None)?;
    tx.commit()?;
    Ok(Response::json(
        201,
        &json!({ "user": user_json(id, &username, &email, created), "tokens": tokens }),
    ))
}

/// POST /auth/login
pub fn login(w: &mut Worker, shared: &Shared, body: &[u8]) -> Result<Response, ApiError> {
    let body = Body::parse(body)?;
    let mut errs = Vec::new();
    let email = body.req_str("email", &mut errs).to_lowercase();
    let password = body.req_str("password", &mut errs);
    let device = body.opt_str("deviceInfo", &mut errs);
    finish(errs)?;
    let c = w.client()?;
    let row = c.query_opt(
        "SELECT id, username, email, password_hash, created_at FROM users WHERE email = $1",
        &[&email],
    )?;
    let stored: Option<String> = row.as_ref().map(|r| r.get(3));
    // Always pay for one verification, so timing does not reveal which emails exist.
    if !shared.hasher.verify(&password, stored.as_deref()) {
        return Err(INVALID_CREDENTIALS);
    }
    let Some(row) = row else {
        return Err(INVALID_CREDENTIALS);
    };
    let (id, username): (Uuid, String) = (row.get(0), row.get(1));
    let device = device.map(|d| d.chars().take(256).collect::<String>());
    let tokens = open_session(c, shared, id, &username, device.as_deref())?;
    Ok(Response::json(
        201,
        &json!({ "user": user_json(id, &username, row.get(2), row.get(4)), "tokens": tokens }),
    ))
}

/// POST /auth/refresh: rotates the refresh token; a reused one revokes its session.
pub fn refresh(w: &mut Worker, shared: &Shared, body: &[u8]) -> Result<Response, ApiError> {
    let body = Body::parse(body)?;
    let mut errs = Vec::new();
    let token = body.req_str("refreshToken", &mut errs);
    finish(errs)?;
    let hash = shared.keys.refresh_hash(&token);
    let c = w.client()?;
    let mut tx = c.transaction()?;
    let row = tx.query_opt(
        "SELECT rt.session_id, rt.used_at IS NOT NULL, s.revoked_at IS NOT NULL, s.expires_at < now(),
                u.id, u.username, u.email, u.created_at
         FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id JOIN users u ON u.id = s.user_id
         WHERE rt.token_hash = $1 FOR UPDATE OF rt, s",
        &[&hash],
    )?;
    let Some(row) = row else {
        return Err(INVALID_REFRESH);
    };
    let (session, used, revoked, expired): (Uuid, bool, bool, bool) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    if used {
        // A rotated token came back: someone holds a copy. End the session everywhere.
        if !revoked {
            tx.execute(
                "UPDATE sessions SET revoked_at = now() WHERE id = $1",
                &[&session],
            )?;
            notify_revoked(&mut tx, &[session])?;
        }
        tx.commit()?;
        shared.mark_revoked(&[session]);
        log::warn!("refresh token reuse: session {session} revoked");
        return Err(INVALID_REFRESH);
    }
    if revoked || expired {
        return Err(INVALID_REFRESH);
    }
    let (user_id, username): (Uuid, String) = (row.get(4), row.get(5));
    tx.execute(
        "UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1",
        &[&hash],
    )?;
    let next = shared.keys.new_refresh();
    tx.execute(
        "INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)",
        &[&shared.keys.refresh_hash(&next), &session],
    )?;
    tx.execute(
        "UPDATE sessions SET expires_at = now() + make_interval(secs => $2) WHERE id = $1",
        &[&session, &(shared.keys.refresh_ttl as f64)],
    )?;
    tx.commit()?;
    let tokens = json!({
        "accessToken": shared.keys.issue_access(user_id, &username, session),
        "refreshToken": next,
    });
    Ok(Response::json(
        201,
        &json!({ "user": user_json(user_id, &username, row.get(6), row.get(7)), "tokens": tokens }),
    ))
}

/// POST /auth/logout: revokes the given session of the caller, or all of them.
pub fn logout(
    w: &mut Worker,
    shared: &Shared,
    who: &Identity,
    body: &[u8],
) -> Result<Response, ApiError> {
    let body = Body::parse(body)?;
    let mut errs = Vec::new();
    let session = body.opt_str("sessionId", &mut errs);
    finish(errs)?;
    let session = match session {
        Some(s) => Some(
            Uuid::parse_str(&s)
                .map_err(|_| ApiError::Validation(vec!["sessionId must be a UUID".into()]))?,
        ),
        None => None,
    };
    let c = w.client()?;
    let mut tx = c.transaction()?;
    let rows = tx.query(
        "UPDATE sessions SET revoked_at = now()
         WHERE user_id = $1 AND revoked_at IS NULL AND ($2::uuid IS NULL OR id = $2)
         RETURNING id",
        &[&who.user_id, &session],
    )?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();
    if !ids.is_empty() {
        notify_revoked(&mut tx, &ids)?;
    }
    tx.commit()?;
    shared.mark_revoked(&ids);
    Ok(Response::json(201, &json!({ "success": true })))
}

/// Tells every node (this one included) that these sessions are revoked.
fn notify_revoked(c: &mut impl GenericClient, sessions: &[Uuid]) -> Result<(), postgres::Error> {
    // Chunks keep each payload far below the 8000-byte NOTIFY limit.
    for chunk in sessions.chunks(100) {
        let payload = json!({ "t": "revoke", "s": chunk }).to_string();
        c.execute("SELECT pg_notify($1, $2)", &[&EVENTS_CHANNEL, &payload])?;
    }
    Ok(())
}
