//! Accounts managed by the product's backend through the server API (run on worker
//! threads): users created without a password, tokens minted for them, deactivation and
//! reactivation. Each action writes its audit row in its own transaction.

use crate::auth::Auth;
use crate::auth::accounts::{DEACTIVATED, Tokens, open_session, username, valid_email};
use crate::auth::external::session_of;
use crate::auth::users::{DISPLAY_NAME_MAX, Profile};
use crate::base::error::{ApiError, USER_NOT_FOUND, check};
use crate::base::text::{fold, label};
use crate::pg::audit::{self, Actor};
use crate::pg::is_unique_violation;
use crate::pg::notify;
use crate::pg::pool::Worker;
use postgres::GenericClient;
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

/// `POST /admin/users`.
#[derive(Debug, Default)]
pub struct NewUser {
    /// Username (the rules of registration).
    pub username: String,
    /// E-mail address, optional.
    pub email: Option<String>,
    /// Name to show, optional.
    pub display_name: Option<String>,
    /// The user's `sub` at the product's identity provider: its tokens then sign this
    /// user in.
    pub external_id: Option<String>,
}

/// An account as the server API shows it.
#[derive(Debug, Serialize)]
pub struct Account {
    /// The profile.
    #[serde(flatten)]
    pub profile: Profile,
    /// E-mail address.
    pub email: Option<String>,
    /// The id at the product's identity provider.
    pub external_id: Option<String>,
    /// True while deactivated.
    pub deactivated: bool,
}

macro_rules! account_columns {
    () => {
        "id, username, display_name, avatar_url, status_text, status_emoji, created_at, \
         email, external_id, deactivated_at IS NOT NULL"
    };
}

fn account(r: &postgres::Row) -> Account {
    Account {
        profile: Profile::from_row(r),
        email: r.get(7),
        external_id: r.get(8),
        deactivated: r.get(9),
    }
}

/// Reads an account (`user_not_found` when there is none), locking its row when `lock`.
fn read(c: &mut impl GenericClient, id: Uuid, lock: bool) -> Result<Account, ApiError> {
    let sql = if lock {
        concat!(
            "SELECT ",
            account_columns!(),
            " FROM users WHERE id = $1 FOR UPDATE"
        )
    } else {
        concat!("SELECT ", account_columns!(), " FROM users WHERE id = $1")
    };
    c.query_opt(sql, &[&id])?
        .map(|r| account(&r))
        .ok_or(USER_NOT_FOUND)
}

/// Creates an account with no password (409 on a taken username, e-mail or external id;
/// an external id needs `[auth.external]`, whose issuer it is paired with).
pub fn create_user(
    w: &mut Worker,
    actor: &Actor,
    issuer: Option<&str>,
    u: NewUser,
) -> Result<Account, ApiError> {
    let mut errs = Vec::new();
    let name = username(&u.username).map_err(|e| errs.push(e)).ok();
    let email = u.email.as_deref().map(|e| e.trim().to_lowercase());
    if email.as_deref().is_some_and(|e| !valid_email(e)) {
        errs.push("email must be a valid e-mail address".into());
    }
    let display = match u.display_name.as_deref() {
        Some(d) => label("display_name", d, DISPLAY_NAME_MAX)
            .map_err(|e| errs.push(e))
            .ok(),
        None => None,
    };
    if let Some(x) = &u.external_id
        && (x.is_empty() || x.len() > 255 || x.contains('\0'))
    {
        errs.push("external_id must be 1 to 255 characters".into());
    }
    check(errs)?;
    let (name, key) = name.ok_or(ApiError::Internal)?;
    let issuer = match (&u.external_id, issuer) {
        (Some(_), None) => {
            return Err(ApiError::BadRequest(
                "invalid_payload",
                "external_id needs [auth.external] configured".into(),
            ));
        }
        (Some(_), Some(i)) => Some(i.to_string()),
        (None, _) => None,
    };
    let c = w.client()?;
    let mut tx = c.transaction()?;
    let id = Uuid::now_v7();
    let r = tx.execute(
        "INSERT INTO users (id, username, username_key, username_fold, email, display_name,
                            display_fold, external_issuer, external_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            &id,
            &name,
            &key,
            &fold(&name),
            &email,
            &display,
            &display.as_deref().map(fold),
            &issuer,
            &u.external_id,
        ],
    );
    match r {
        Ok(_) => {}
        Err(e)
            if is_unique_violation(&e, "users_username_key")
                || is_unique_violation(&e, "users_username_key_idx") =>
        {
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
        Err(e) if is_unique_violation(&e, "users_external_idx") => {
            return Err(ApiError::Conflict(
                "external_id_taken",
                "Another user has this external id",
            ));
        }
        Err(e) => return Err(e.into()),
    }
    audit::record(
        &mut tx,
        actor,
        "user.create",
        None,
        Some(id),
        json!({"username": name}),
    )?;
    let created = read(&mut tx, id, false)?;
    let data = serde_json::to_value(&created.profile).unwrap_or_default();
    crate::pg::outbox::record(&mut tx, "user.created", None, &data)?;
    tx.commit()?;
    Ok(created)
}

/// Opens a session for `user` and returns its tokens (refused while deactivated).
pub fn tokens(w: &mut Worker, auth: &Auth, actor: &Actor, user: Uuid) -> Result<Tokens, ApiError> {
    let c = w.client()?;
    let mut tx = c.transaction()?;
    let a = read(&mut tx, user, true)?;
    if a.deactivated {
        return Err(DEACTIVATED);
    }
    let tokens = open_session(&mut tx, auth, user, &a.profile.username, Some("server api"))?;
    audit::record(&mut tx, actor, "user.tokens", None, Some(user), json!({}))?;
    tx.commit()?;
    Ok(tokens)
}

/// Deactivates an account: every session revoked (its sockets on every node closed with
/// 1008), logins, refreshes, new tokens and the provider's tokens refused until
/// [`reactivate`]. Deactivating twice changes nothing more.
pub fn deactivate(
    w: &mut Worker,
    auth: &Auth,
    actor: &Actor,
    user: Uuid,
) -> Result<Account, ApiError> {
    let c = w.client()?;
    let mut tx = c.transaction()?;
    read(&mut tx, user, true)?;
    let ids = revoke_all(&mut tx, user)?;
    audit::record(
        &mut tx,
        actor,
        "user.deactivate",
        None,
        Some(user),
        json!({"sessions_revoked": ids.len() - 1}),
    )?;
    let a = read(&mut tx, user, false)?;
    let data = serde_json::to_value(&a.profile).unwrap_or_default();
    crate::pg::outbox::record(&mut tx, "user.deactivated", None, &data)?;
    tx.commit()?;
    auth.mark_revoked(&ids);
    Ok(a)
}

/// Marks the account deactivated and revokes every session of it (the identity
/// provider's tokens too); the ids revoked, for [`Auth::mark_revoked`] after commit.
fn revoke_all(tx: &mut impl GenericClient, user: Uuid) -> Result<Vec<Uuid>, ApiError> {
    tx.execute(
        "UPDATE users SET deactivated_at = coalesce(deactivated_at, now()) WHERE id = $1",
        &[&user],
    )?;
    let rows = tx.query(
        "UPDATE sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL
         RETURNING id",
        &[&user],
    )?;
    let mut ids: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();
    // The provider's tokens of this user carry a session of its own, derived from its id.
    ids.push(session_of(user));
    notify::publish(tx, &notify::revocations(&ids))?;
    Ok(ids)
}

/// `DELETE /admin/users/:id`: deactivates the account at once and marks it for deletion
/// (`erase`: its messages and reactions first), which `chat::erase` carries out in small
/// transactions. Asking again while it runs changes nothing (an `erase` asked later
/// still applies).
pub fn delete_user(
    w: &mut Worker,
    auth: &Auth,
    actor: &Actor,
    user: Uuid,
    erase: bool,
) -> Result<serde_json::Value, ApiError> {
    let c = w.client()?;
    let mut tx = c.transaction()?;
    read(&mut tx, user, true)?;
    let ids = revoke_all(&mut tx, user)?;
    let row = tx.query_one(
        "UPDATE users SET deleting_at = coalesce(deleting_at, now()), erase = erase OR $2
         WHERE id = $1 RETURNING erase",
        &[&user, &erase],
    )?;
    let erase: bool = row.get(0);
    audit::record(
        &mut tx,
        actor,
        "user.delete",
        None,
        Some(user),
        json!({"erase": erase}),
    )?;
    tx.commit()?;
    auth.mark_revoked(&ids);
    Ok(json!({"id": user, "status": "deleting", "erase": erase}))
}

/// Lets a deactivated account sign in again (its old sessions stay revoked).
pub fn reactivate(w: &mut Worker, actor: &Actor, user: Uuid) -> Result<Account, ApiError> {
    let c = w.client()?;
    let mut tx = c.transaction()?;
    read(&mut tx, user, true)?;
    let n = tx.execute(
        "UPDATE users SET deactivated_at = NULL WHERE id = $1 AND deleting_at IS NULL",
        &[&user],
    )?;
    if n == 0 {
        return Err(ApiError::Conflict(
            "user_deleting",
            "The account is being deleted",
        ));
    }
    audit::record(
        &mut tx,
        actor,
        "user.reactivate",
        None,
        Some(user),
        json!({}),
    )?;
    let a = read(&mut tx, user, false)?;
    tx.commit()?;
    Ok(a)
}
