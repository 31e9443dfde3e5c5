//! Accounts and sessions: register, log in, refresh, log out (run on worker threads).

use crate::auth::Auth;
use crate::base::error::{ApiError, check};
use crate::base::model::{Identity, iso};
use crate::base::names;
use crate::base::text::fold;
use crate::pg::is_unique_violation;
use crate::pg::notify;
use crate::pg::pool::Worker;
use chrono::{DateTime, Utc};
use postgres::GenericClient;
use serde::Serialize;
use uuid::Uuid;

const INVALID_CREDENTIALS: ApiError =
    ApiError::Unauthorized("invalid_credentials", "Invalid credentials");
const USERNAME_TAKEN: ApiError = ApiError::Conflict("username_taken", "Username already taken");
const EMAIL_TAKEN: ApiError = ApiError::Conflict("email_taken", "Email already registered");
/// The account was deactivated through the server API (after the right password only).
pub const DEACTIVATED: ApiError =
    ApiError::Forbidden("account_deactivated", "This account is deactivated");
const INVALID_REFRESH: ApiError =
    ApiError::Unauthorized("invalid_token", "Invalid or expired refresh token");

/// An account as clients see it.
#[derive(Debug, Serialize)]
pub struct User {
    /// User id.
    pub id: Uuid,
    /// Username.
    pub username: String,
    /// E-mail address (lower-cased).
    pub email: String,
    /// Registration time.
    pub created_at: String,
}

impl User {
    fn new(id: Uuid, username: &str, email: &str, created_at: DateTime<Utc>) -> User {
        User {
            id,
            username: username.to_string(),
            email: email.to_string(),
            created_at: iso(created_at),
        }
    }
}

/// A session's tokens.
#[derive(Debug, Serialize)]
pub struct Tokens {
    /// Access token (JWT).
    #[serde(rename = "accessToken")]
    pub access: String,
    /// Refresh token (opaque).
    #[serde(rename = "refreshToken")]
    pub refresh: String,
}

/// The answer to register, login and refresh.
#[derive(Debug, Serialize)]
pub struct Signed {
    /// The account.
    pub user: User,
    /// The session's tokens.
    pub tokens: Tokens,
}

/// A registration request.
pub struct Register {
    /// Wanted username.
    pub username: String,
    /// E-mail address.
    pub email: String,
    /// Password.
    pub password: String,
}

impl Register {
    /// Every rule the request breaks, one line each.
    pub fn problems(&self) -> Vec<String> {
        let mut errs = Vec::new();
        if let Err(e) = username(&self.username) {
            errs.push(e);
        }
        if !valid_email(&self.email.to_lowercase()) {
            errs.push("email must be an email".into());
        }
        if !(8..=1024).contains(&self.password.chars().count()) {
            errs.push("password must be 8 to 1024 characters".into());
        }
        errs
    }
}

/// A login request.
pub struct Login {
    /// E-mail address.
    pub email: String,
    /// Password.
    pub password: String,
    /// Free text naming the device, kept with the session.
    pub device: Option<String>,
}

/// A username as stored, and its unique key: a name of 3 to 50 characters under the
/// rules every name keeps (`base::names`), of letters, combining marks, digits, single
/// inner spaces and `_ - . '` only, with a letter or a digit. The key folds case, so
/// that names differing only by case are one name.
pub fn username(raw: &str) -> Result<(String, String), String> {
    use unicode_normalization::char::is_combining_mark;
    let name = names::normalise(raw, "username", 3..=50)?;
    let allowed = |c: char| c.is_alphanumeric() || is_combining_mark(c) || " _-.'".contains(c);
    if let Some(bad) = name.chars().find(|c| !allowed(*c)) {
        return Err(format!(
            "username must not contain U+{:04X}: letters, digits, spaces and _ - . ' only",
            bad as u32
        ));
    }
    if !name.chars().any(char::is_alphanumeric) {
        return Err("username must contain a letter or a digit".into());
    }
    let key = names::case_key(&name);
    Ok((name, key))
}

/// A plausible e-mail address: one `@`, non-empty parts, a dot in the domain, no spaces.
pub fn valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    s.len() <= 254
        && !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Opens a session and returns its tokens.
pub(crate) fn open_session(
    c: &mut impl GenericClient,
    auth: &Auth,
    user_id: Uuid,
    username: &str,
    device: Option<&str>,
) -> Result<Tokens, ApiError> {
    let session = Uuid::now_v7();
    let ttl = auth.keys.refresh_ttl as f64;
    c.execute(
        "INSERT INTO sessions (id, user_id, device_info, expires_at)
         VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
        &[&session, &user_id, &device, &ttl],
    )?;
    let refresh = auth.keys.new_refresh();
    c.execute(
        "INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)",
        &[&auth.keys.refresh_hash(&refresh), &session],
    )?;
    Ok(Tokens {
        access: auth.keys.issue_access(user_id, username, session),
        refresh,
    })
}

/// Creates an account and its first session.
pub fn register(w: &mut Worker, auth: &Auth, r: Register) -> Result<Signed, ApiError> {
    check(r.problems())?;
    let (username, key) = username(&r.username).map_err(|e| ApiError::Validation(vec![e]))?;
    let (email, password) = (r.email.to_lowercase(), r.password);
    // Refuse a taken name or address before paying for a password hash. (The insert's
    // unique indexes still decide a race between two registrations.)
    let c = w.client()?;
    let taken = c.query_opt(
        "SELECT username_key = $1, email = $2 FROM users WHERE username_key = $1 OR email = $2 LIMIT 1",
        &[&key, &email],
    )?;
    if let Some(row) = taken {
        return Err(if row.get(0) {
            USERNAME_TAKEN
        } else {
            EMAIL_TAKEN
        });
    }
    let hash = auth.hasher.hash(&password).map_err(|e| {
        log::error!("{e}");
        ApiError::Internal
    })?;
    let c = w.client()?;
    let mut tx = c.transaction()?;
    let id = Uuid::now_v7();
    let row = tx.query_one(
        "INSERT INTO users (id, username, username_key, username_fold, email, password_hash)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING created_at",
        &[&id, &username, &key, &fold(&username), &email, &hash],
    );
    let created: DateTime<Utc> = match row {
        Ok(r) => r.get(0),
        Err(e)
            if is_unique_violation(&e, "users_username_key")
                || is_unique_violation(&e, "users_username_key_idx") =>
        {
            return Err(USERNAME_TAKEN);
        }
        Err(e) if is_unique_violation(&e, "users_email_key") => return Err(EMAIL_TAKEN),
        Err(e) => return Err(e.into()),
    };
    let tokens = open_session(&mut tx, auth, id, &username, None)?;
    let profile = crate::auth::users::Profile::new(id, &username, created);
    crate::pg::outbox::record(
        &mut tx,
        "user.created",
        None,
        &serde_json::to_value(&profile).unwrap_or_default(),
    )?;
    tx.commit()?;
    Ok(Signed {
        user: User::new(id, &username, &email, created),
        tokens,
    })
}

/// Opens a session for the right password.
pub fn login(w: &mut Worker, auth: &Auth, l: Login) -> Result<Signed, ApiError> {
    let (email, password) = (l.email.to_lowercase(), l.password);
    let c = w.client()?;
    let row = c.query_opt(
        "SELECT id, username, email, password_hash, created_at, deactivated_at IS NOT NULL
         FROM users WHERE email = $1",
        &[&email],
    )?;
    let stored: Option<String> = row.as_ref().map(|r| r.get(3));
    // Always pay for one verification, so timing does not reveal which emails exist.
    if !auth.hasher.verify(&password, stored.as_deref()) {
        return Err(INVALID_CREDENTIALS);
    }
    let Some(row) = row else {
        return Err(INVALID_CREDENTIALS);
    };
    let (id, username): (Uuid, String) = (row.get(0), row.get(1));
    if row.get::<_, bool>(5) {
        return Err(DEACTIVATED);
    }
    let device = l.device.map(|d| d.chars().take(256).collect::<String>());
    let tokens = open_session(c, auth, id, &username, device.as_deref())?;
    Ok(Signed {
        user: User::new(id, &username, row.get(2), row.get(4)),
        tokens,
    })
}

/// Rotates a refresh token; a reused one revokes its session.
pub fn refresh(w: &mut Worker, auth: &Auth, token: &str) -> Result<Signed, ApiError> {
    let hash = auth.keys.refresh_hash(token);
    // The successor is derived from the token (and the server's secret), so a refresh
    // retried within the grace window answers the same new token again.
    let next = auth.keys.successor(token);
    let next_hash = auth.keys.refresh_hash(&next);
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
    let (user_id, username): (Uuid, String) = (row.get(4), row.get(5));
    let signed = |tx: postgres::Transaction<'_>| -> Result<Signed, ApiError> {
        tx.commit()?;
        Ok(Signed {
            user: User::new(user_id, &username, row.get(6), row.get(7)),
            tokens: Tokens {
                access: auth.keys.issue_access(user_id, &username, session),
                refresh: next.clone(),
            },
        })
    };
    // A statement of its own, after the lock: it sees the rotation a concurrent
    // refresh committed while we waited (the locking read's subqueries would not).
    let retried = used
        && tx
            .query_one(
                "SELECT rt.used_at > now() - make_interval(secs => $2)
                        AND EXISTS (SELECT 1 FROM refresh_tokens n
                                    WHERE n.token_hash = $3 AND n.used_at IS NULL)
                 FROM refresh_tokens rt WHERE rt.token_hash = $1",
                &[&hash, &(auth.refresh_grace.as_secs_f64()), &next_hash],
            )?
            .get::<_, Option<bool>>(0)
            == Some(true);
    if retried && !revoked && !expired {
        // Two tabs, or a retried request, refreshing at once: the same new pair.
        return signed(tx);
    }
    if used {
        // A rotated token came back: someone holds a copy. End the session everywhere.
        if !revoked {
            tx.execute(
                "UPDATE sessions SET revoked_at = now() WHERE id = $1",
                &[&session],
            )?;
            notify::publish(&mut tx, &notify::revocations(&[session]))?;
        }
        tx.commit()?;
        auth.mark_revoked(&[session]);
        log::warn!("refresh token reuse: session {session} revoked");
        return Err(INVALID_REFRESH);
    }
    if revoked || expired {
        return Err(INVALID_REFRESH);
    }
    tx.execute(
        "UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1",
        &[&hash],
    )?;
    tx.execute(
        "INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)",
        &[&next_hash, &session],
    )?;
    tx.execute(
        "UPDATE sessions SET expires_at = now() + make_interval(secs => $2) WHERE id = $1",
        &[&session, &(auth.keys.refresh_ttl as f64)],
    )?;
    signed(tx)
}

/// Revokes the given session of the caller, or all of them; and the caller's session
/// that `refresh` (a refresh token, the web app's cookie) belongs to, if any.
pub fn logout(
    w: &mut Worker,
    auth: &Auth,
    who: &Identity,
    session: Option<Uuid>,
    refresh: Option<&str>,
) -> Result<(), ApiError> {
    let hash = refresh.map(|t| auth.keys.refresh_hash(t));
    let c = w.client()?;
    let mut tx = c.transaction()?;
    let rows = tx.query(
        "UPDATE sessions SET revoked_at = now()
         WHERE user_id = $1 AND revoked_at IS NULL
           AND ($2::uuid IS NULL OR id = $2
                OR id = (SELECT session_id FROM refresh_tokens WHERE token_hash = $3::bytea))
         RETURNING id",
        &[&who.user_id, &session, &hash],
    )?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();
    notify::publish(&mut tx, &notify::revocations(&ids))?;
    tx.commit()?;
    auth.mark_revoked(&ids);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_normalised_and_look_alikes_refused() {
        let (name, key) = username("  Alice  ").unwrap();
        assert_eq!((name.as_str(), key.as_str()), ("Alice", "alice"));
        // NFD and NFC spellings are one name.
        assert_eq!(
            username("Zoe\u{301}").unwrap(),
            username("Zo\u{e9}").unwrap()
        );
        assert_eq!(username("ALICE").unwrap().1, key);
        assert!(username("Jean-Luc O'Neil").is_ok());
        assert!(username("ユーザー名").is_ok());
        for bad in [
            "   ",
            "ab",
            "a\u{200b}lice",
            "alice\u{202e}",
            "al\u{0}ice",
            "al\tice",
            "a  b c",
            "p\u{430}ypal",
            "___",
            "alice\u{feff}",
        ] {
            assert!(username(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn emails() {
        assert!(valid_email("a@b.co"));
        for bad in ["a", "@b.co", "a@b", "a@.b", "a b@c.d", "a@b@c.d"] {
            assert!(!valid_email(bad), "{bad}");
        }
    }
}
