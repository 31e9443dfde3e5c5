//! The audit log: one row per action of an API key or per moderation of a user, written
//! by the use case inside the transaction of the action (both happen or neither), and
//! read newest first.

use crate::base::model::{Identity, iso};
use chrono::{DateTime, Utc};
use postgres::GenericClient;
use serde::Serialize;
use uuid::Uuid;

/// Who acted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Actor {
    /// `api_key` or `user`.
    pub kind: &'static str,
    /// The key's configured name, or the user's id.
    pub id: String,
    /// The key's name, or the user's username.
    pub name: String,
}

impl Actor {
    /// An API key, by its configured name.
    pub fn key(name: &str) -> Actor {
        Actor {
            kind: "api_key",
            id: name.to_string(),
            name: name.to_string(),
        }
    }

    /// A user acting on its own behalf.
    pub fn user(who: &Identity) -> Actor {
        Actor {
            kind: "user",
            id: who.user_id.to_string(),
            name: who.username.clone(),
        }
    }
}

/// Records `action` by `actor` in the caller's transaction.
pub fn record(
    c: &mut impl GenericClient,
    actor: &Actor,
    action: &str,
    room: Option<Uuid>,
    target: Option<Uuid>,
    data: serde_json::Value,
) -> Result<(), postgres::Error> {
    c.execute(
        "INSERT INTO audit_log (actor_kind, actor_id, actor_name, action, room_id,
                                target_user_id, data)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &actor.kind,
            &actor.id,
            &actor.name,
            &action,
            &room,
            &target,
            &data,
        ],
    )?;
    Ok(())
}

/// One row of the audit log as `GET /admin/audit` shows it.
#[derive(Debug, Serialize)]
pub struct Entry {
    /// Position in the log (its cursor).
    pub id: i64,
    /// When.
    pub at: String,
    /// Who.
    pub actor: Actor,
    /// What, e.g. `room.kick`, `user.deactivate`.
    pub action: String,
    /// The room acted on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room_id: Option<Uuid>,
    /// The user acted on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_user_id: Option<Uuid>,
    /// Details of the action.
    pub data: serde_json::Value,
}

/// Up to `limit` rows older than `before` (all when `None`), newest first.
pub fn page(
    c: &mut impl GenericClient,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Entry>, postgres::Error> {
    let rows = c.query(
        "SELECT id, at, actor_kind, actor_id, actor_name, action, room_id, target_user_id, data
         FROM audit_log WHERE $1::bigint IS NULL OR id < $1 ORDER BY id DESC LIMIT $2",
        &[&before, &limit],
    )?;
    Ok(rows
        .iter()
        .map(|r| {
            let kind: &str = r.get(2);
            Entry {
                id: r.get(0),
                at: iso(r.get::<_, DateTime<Utc>>(1)),
                actor: Actor {
                    kind: if kind == "user" { "user" } else { "api_key" },
                    id: r.get(3),
                    name: r.get(4),
                },
                action: r.get(5),
                room_id: r.get(6),
                target_user_id: r.get(7),
                data: r.get(8),
            }
        })
        .collect())
}
