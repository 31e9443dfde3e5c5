//! Users as people see them: profiles (`GET`/`PATCH /me`, `GET /users/:id`), the
//! directory (`GET /users?q=`), and the accounts of the product's identity provider,
//! created on first use (run on worker threads).

use crate::auth::accounts::username;
use crate::auth::external::{ExternalClaims, session_of};
use crate::base::error::{ApiError, USER_NOT_FOUND, check};
use crate::base::model::{Identity, iso};
use crate::base::text::{self, fold, http_url, label, valid_emoji};
use crate::pg::pool::Worker;
use postgres::{GenericClient, Row};
use serde::Serialize;
use uuid::Uuid;

/// Longest display name, characters.
pub const DISPLAY_NAME_MAX: usize = 64;
/// Longest status line, characters.
pub const STATUS_TEXT_MAX: usize = 140;
/// Longest avatar URL, characters.
pub const AVATAR_URL_MAX: usize = 2048;
/// Longest directory query, characters.
pub const QUERY_MAX: usize = 50;

/// A user as anyone signed in may see them.
#[derive(Debug, Serialize)]
pub struct Profile {
    /// User id.
    pub id: Uuid,
    /// Username (unique, immutable).
    pub username: String,
    /// Name to show, when the user chose one (or the provider gave one).
    pub display_name: Option<String>,
    /// Picture, an http(s) URL.
    pub avatar_url: Option<String>,
    /// Status line.
    pub status_text: Option<String>,
    /// Status emoji.
    pub status_emoji: Option<String>,
    /// When the account was created.
    pub created_at: String,
}

/// The caller's own account: the profile, and the e-mail address of a local account.
#[derive(Debug, Serialize)]
pub struct Me {
    /// The profile.
    #[serde(flatten)]
    pub profile: Profile,
    /// E-mail address (null for an account of the product's identity provider).
    pub email: Option<String>,
}

impl Profile {
    /// A new account's profile (nothing set but its name).
    pub fn new(id: Uuid, username: &str, created: chrono::DateTime<chrono::Utc>) -> Profile {
        Profile {
            id,
            username: username.to_string(),
            display_name: None,
            avatar_url: None,
            status_text: None,
            status_emoji: None,
            created_at: crate::base::model::iso(created),
        }
    }

    /// From the columns id, username, display_name, avatar_url, status_text,
    /// status_emoji, created_at (in that order).
    pub(crate) fn from_row(r: &Row) -> Profile {
        Profile {
            id: r.get(0),
            username: r.get(1),
            display_name: r.get(2),
            avatar_url: r.get(3),
            status_text: r.get(4),
            status_emoji: r.get(5),
            created_at: iso(r.get(6)),
        }
    }
}

/// A change of profile: each field absent (kept), null (cleared) or a new value.
#[derive(Debug, Default)]
pub struct ProfileChange {
    /// Display name.
    pub display_name: Option<Option<String>>,
    /// Avatar URL.
    pub avatar_url: Option<Option<String>>,
    /// Status line.
    pub status_text: Option<Option<String>>,
    /// Status emoji.
    pub status_emoji: Option<Option<String>>,
}

impl ProfileChange {
    /// The change as stored (labels normalised), or every rule it breaks.
    pub fn checked(self) -> Result<ProfileChange, ApiError> {
        let mut errs = Vec::new();
        let mut each =
            |v: Option<Option<String>>, f: &dyn Fn(&str) -> Result<String, String>| match v {
                Some(Some(s)) => match f(&s) {
                    Ok(s) => Some(Some(s)),
                    Err(e) => {
                        errs.push(e);
                        None
                    }
                },
                other => other,
            };
        let change = ProfileChange {
            display_name: each(self.display_name, &|s| {
                label("display_name", s, DISPLAY_NAME_MAX)
            }),
            avatar_url: each(self.avatar_url, &|s| {
                http_url("avatar_url", s, AVATAR_URL_MAX).map(|()| s.to_string())
            }),
            status_text: each(self.status_text, &|s| {
                label("status_text", s, STATUS_TEXT_MAX)
            }),
            status_emoji: each(self.status_emoji, &|s| {
                if valid_emoji(s) {
                    Ok(s.to_string())
                } else {
                    Err("status_emoji must be one emoji".into())
                }
            }),
        };
        check(errs)?;
        Ok(change)
    }
}

/// The caller's own account.
pub fn me(w: &mut Worker, who: &Identity) -> Result<Me, ApiError> {
    let row = w.client()?.query_opt(
        "SELECT id, username, display_name, avatar_url, status_text, status_emoji, created_at, email
         FROM users WHERE id = $1",
        &[&who.user_id],
    )?;
    let r = row.ok_or(USER_NOT_FOUND)?;
    Ok(Me {
        profile: Profile::from_row(&r),
        email: r.get(7),
    })
}

/// Applies a checked [`ProfileChange`] to the caller's profile; when it changes anything,
/// every node learns of it (`user_updated` to the sockets of those who share a room).
pub fn update_me(w: &mut Worker, who: &Identity, ch: ProfileChange) -> Result<Me, ApiError> {
    let set = |v: &Option<Option<String>>| v.is_some();
    let val = |v: &Option<Option<String>>| v.clone().flatten();
    let display = val(&ch.display_name);
    let display_fold = display.as_deref().map(fold);
    let c = w.client()?;
    let mut tx = c.transaction()?;
    // The profile before, locked: a change that changes nothing tells no socket.
    let before = tx
        .query_opt(
            "SELECT display_name, avatar_url, status_text, status_emoji FROM users
             WHERE id = $1 FOR UPDATE",
            &[&who.user_id],
        )?
        .ok_or(USER_NOT_FOUND)?;
    let row = tx.query_opt(
        "UPDATE users SET
             display_name = CASE WHEN $2 THEN $3 ELSE display_name END,
             display_fold = CASE WHEN $2 THEN $4 ELSE display_fold END,
             avatar_url   = CASE WHEN $5 THEN $6 ELSE avatar_url END,
             status_text  = CASE WHEN $7 THEN $8 ELSE status_text END,
             status_emoji = CASE WHEN $9 THEN $10 ELSE status_emoji END
         WHERE id = $1
         RETURNING id, username, display_name, avatar_url, status_text, status_emoji, created_at, email",
        &[
            &who.user_id,
            &set(&ch.display_name),
            &display,
            &display_fold,
            &set(&ch.avatar_url),
            &val(&ch.avatar_url),
            &set(&ch.status_text),
            &val(&ch.status_text),
            &set(&ch.status_emoji),
            &val(&ch.status_emoji),
        ],
    )?;
    let r = row.ok_or(USER_NOT_FOUND)?;
    let me = Me {
        profile: Profile::from_row(&r),
        email: r.get(7),
    };
    let data = serde_json::to_value(&me.profile).unwrap_or_default();
    crate::pg::outbox::record(&mut tx, "user.updated", None, &data)?;
    let p = &me.profile;
    let old = |i: usize| before.get::<_, Option<String>>(i);
    let after = [
        &p.display_name,
        &p.avatar_url,
        &p.status_text,
        &p.status_emoji,
    ];
    if (0..4).any(|i| old(i) != *after[i]) {
        // Delivered at commit to every node, which tells the room-mates' sockets.
        let user = who.user_id;
        crate::pg::notify::publish(&mut tx, &[crate::pg::notify::Event::Profile { user }])?;
    }
    tx.commit()?;
    Ok(me)
}

/// Anyone's profile.
pub fn profile(w: &mut Worker, id: Uuid) -> Result<Profile, ApiError> {
    let row = w.client()?.query_opt(
        "SELECT id, username, display_name, avatar_url, status_text, status_emoji, created_at
         FROM users WHERE id = $1",
        &[&id],
    )?;
    row.map(|r| Profile::from_row(&r)).ok_or(USER_NOT_FOUND)
}

/// The smallest string above every string that starts with `prefix` (byte order), or
/// `None` when there is none.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = last as u32 + 1;
        if (0xD800..0xE000).contains(&next) {
            next = 0xE000;
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// The directory: users whose username or display name starts with `q`, whatever the
/// case and accents, best match first (the matched name in byte order of its folded
/// form), at most `limit`.
///
/// Each name is a range of one index (`username_fold`, `display_fold`: byte-ordered, so
/// the index gives the order too), read only up to `limit` rows: the cost does not grow
/// with the number of users, nor with how many match.
pub fn search(w: &mut Worker, q: &str, limit: i64) -> Result<Vec<Profile>, ApiError> {
    text::query(q, QUERY_MAX).map_err(|e| ApiError::Validation(vec![e]))?;
    let key = fold(q);
    if key.is_empty() {
        return Err(ApiError::Validation(vec![format!(
            "q must be 1 to {QUERY_MAX} characters"
        )]));
    }
    let end = prefix_end(&key);
    let sql = "SELECT u.id, u.username, u.display_name, u.avatar_url, u.status_text,
                u.status_emoji, u.created_at
         FROM (SELECT id, min(k) AS k FROM (
                 (SELECT id, username_fold AS k FROM users
                  WHERE username_fold >= $1 AND ($2::text IS NULL OR username_fold < $2)
                  ORDER BY username_fold LIMIT $3)
                 UNION ALL
                 (SELECT id, display_fold FROM users
                  WHERE display_fold >= $1 AND ($2::text IS NULL OR display_fold < $2)
                  ORDER BY display_fold LIMIT $3)) m
               GROUP BY id ORDER BY min(k), id LIMIT $3) hit
         JOIN users u ON u.id = hit.id
         ORDER BY hit.k, u.id";
    let (c, st) = w.prepared(sql)?;
    let rows = c.query(&st, &[&key, &end, &limit])?;
    Ok(rows.iter().map(Profile::from_row).collect())
}

/// Candidate usernames from a provider's claims: each claim in order, as a valid
/// username (an e-mail address gives its local part; characters usernames do not allow
/// become `_`; at most 40 characters, leaving room for a suffix), then `user`.
pub fn usernames_from(names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = names.iter().filter_map(|n| sanitize(n)).collect();
    out.push("user".into());
    out
}

fn sanitize(raw: &str) -> Option<String> {
    use unicode_normalization::UnicodeNormalization;
    use unicode_normalization::char::is_combining_mark;
    let raw = match raw.split_once('@') {
        Some((local, _)) if !local.trim().is_empty() => local,
        _ => raw,
    };
    let mut s = String::new();
    for c in raw.trim().nfc() {
        let c = if c.is_whitespace() {
            ' '
        } else if c.is_alphanumeric() || is_combining_mark(c) || "_-.'".contains(c) {
            c
        } else {
            '_'
        };
        if c == ' ' && s.ends_with(' ') {
            continue;
        }
        s.push(c);
    }
    let s: String = s.trim().chars().take(40).collect();
    username(s.trim()).ok().map(|(name, _)| name)
}

/// The user of an external token, created on first use: username from the claims (a
/// taken one gets `_2`, `_3`... then a random suffix), display name from `name`. Two
/// nodes creating the same user at once meet on the (issuer, sub) key.
pub fn external_user(w: &mut Worker, claims: &ExternalClaims) -> Result<Identity, ApiError> {
    if let Some(id) = find_external(w.client()?, claims)? {
        return Ok(id);
    }
    let display = claims
        .display_name
        .as_deref()
        .and_then(|n| label("display_name", n, DISPLAY_NAME_MAX).ok());
    let display_fold = display.as_deref().map(fold);
    let bases = usernames_from(&claims.names);
    let base = bases.first().cloned().unwrap_or_else(|| "user".into());
    for attempt in 0..24u32 {
        let name = match attempt {
            0 => base.clone(),
            1..=19 => format!("{base}_{}", attempt + 1),
            _ => format!("{base}_{:06x}", rand::random::<u32>() & 0xFF_FFFF),
        };
        let Ok((name, key)) = username(&name) else {
            continue;
        };
        let id = Uuid::now_v7();
        let c = w.client()?;
        let mut tx = c.transaction()?;
        let row = tx.query_opt(
            "INSERT INTO users (id, username, username_key, username_fold, display_name,
                                display_fold, external_issuer, external_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT DO NOTHING RETURNING created_at",
            &[
                &id,
                &name,
                &key,
                &fold(&name),
                &display,
                &display_fold,
                &claims.issuer,
                &claims.subject,
            ],
        )?;
        if let Some(row) = row {
            let mut profile = Profile::new(id, &name, row.get(0));
            profile.display_name = display.clone();
            let data = serde_json::to_value(&profile).unwrap_or_default();
            crate::pg::outbox::record(&mut tx, "user.created", None, &data)?;
            tx.commit()?;
            w.metrics()
                .identity
                .users_created
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            log::info!("external user {name} created for {}", claims.issuer);
            return Ok(Identity {
                user_id: id,
                username: name,
                session_id: session_of(id),
            });
        }
        // Either the user was just created elsewhere, or the name is taken.
        drop(tx);
        if let Some(id) = find_external(w.client()?, claims)? {
            return Ok(id);
        }
    }
    log::error!("no free username for an external user of {}", claims.issuer);
    Err(ApiError::Internal)
}

fn find_external(
    c: &mut impl GenericClient,
    claims: &ExternalClaims,
) -> Result<Option<Identity>, ApiError> {
    let row = c.query_opt(
        "SELECT id, username, deactivated_at IS NOT NULL FROM users
         WHERE external_issuer = $1 AND external_id = $2",
        &[&claims.issuer, &claims.subject],
    )?;
    // A deactivated account's tokens are refused like any invalid token.
    if row.as_ref().is_some_and(|r| r.get::<_, bool>(2)) {
        return Err(crate::auth::external::INVALID_TOKEN);
    }
    Ok(row.map(|r| {
        let id: Uuid = r.get(0);
        Identity {
            user_id: id,
            username: r.get(1),
            session_id: session_of(id),
        }
    }))
}

/// Gives accounts created before the directory their folded username (at start-up;
/// nodes doing it together write the same values). Returns how many were folded.
pub fn fold_usernames(c: &mut impl GenericClient) -> Result<usize, postgres::Error> {
    let mut done = 0;
    loop {
        let rows = c.query(
            "SELECT id, username FROM users WHERE username_fold IS NULL ORDER BY id LIMIT 1000",
            &[],
        )?;
        if rows.is_empty() {
            return Ok(done);
        }
        let ids: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();
        let folds: Vec<String> = rows.iter().map(|r| fold(r.get(1))).collect();
        c.execute(
            "UPDATE users u SET username_fold = v.f
             FROM unnest($1::uuid[], $2::text[]) AS v(id, f) WHERE u.id = v.id",
            &[&ids, &folds],
        )?;
        done += rows.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_come_from_the_claims() {
        let s = |v: &[&str]| usernames_from(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(s(&["ann"])[0], "ann");
        assert_eq!(s(&["ann.lee@example.com"])[0], "ann.lee");
        assert_eq!(s(&["auth0|5f3a"])[0], "auth0_5f3a");
        assert_eq!(s(&["Zoe\u{301}  Martin"])[0], "Zo\u{e9} Martin");
        // Too short, mixed scripts, or nothing usable: the next claim.
        assert_eq!(s(&["al", "Al Smith"])[0], "Al Smith");
        assert_eq!(s(&["p\u{430}ypal", "sub-1"])[0], "sub-1");
        assert_eq!(s(&["\u{202E}\u{200B}"]), vec!["user"]);
        assert_eq!(s(&[&"x".repeat(80)])[0].chars().count(), 40);
    }

    #[test]
    fn prefix_ranges() {
        assert_eq!(prefix_end("ab").as_deref(), Some("ac"));
        assert_eq!(prefix_end("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end("\u{10FFFF}"), None);
        for s in ["ab", "abz", "ab\u{10FFFF}x"] {
            assert!(s >= "ab" && s < prefix_end("ab").unwrap().as_str());
        }
    }

    #[test]
    fn profile_changes_are_checked() {
        let ok = ProfileChange {
            display_name: Some(Some("  Ann Lee ".into())),
            avatar_url: Some(None),
            status_text: Some(Some("In a meeting".into())),
            status_emoji: Some(Some("📅".into())),
        }
        .checked()
        .unwrap();
        assert_eq!(ok.display_name, Some(Some("Ann Lee".into())));
        assert_eq!(ok.avatar_url, Some(None));
        let bad = ProfileChange {
            display_name: Some(Some("\u{202E}".into())),
            avatar_url: Some(Some("javascript:alert(1)".into())),
            status_text: Some(Some("a\nb".into())),
            status_emoji: Some(Some("ok".into())),
        }
        .checked()
        .unwrap_err();
        let ApiError::Validation(lines) = bad else {
            panic!("validation");
        };
        assert_eq!(lines.len(), 4, "{lines:?}");
    }
}
