//! The endpoints as the database knows them, and the events given up on: listed and
//! sent again by an operator (`GET /admin/webhooks/dead`,
//! `POST /admin/webhooks/dead/:id/retry`).

use crate::base::config::WebhookConfig;
use crate::base::error::ApiError;
use crate::base::model::iso;
use crate::pg::pool::Worker;
use chrono::{DateTime, Utc};
use postgres::GenericClient;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// No dead event with this id.
pub const DEAD_NOT_FOUND: ApiError =
    ApiError::NotFound("dead_event_not_found", "No dead webhook event with this id");

/// Makes `webhook_endpoints` the configured endpoints (at start-up, after the nodes
/// agreed on the configuration). An endpoint new to the database starts at the rooms'
/// current ends (it is sent what happens from now on, not the past); an endpoint no
/// longer configured is forgotten with its cursors and outbox (its dead events stay,
/// listed). Endpoints are known by name (the URL when unnamed): changing the URL, the
/// secret or the events of a name keeps its cursors.
pub fn sync_endpoints(
    c: &mut impl GenericClient,
    hooks: &[WebhookConfig],
) -> Result<(), postgres::Error> {
    let mut tx = c.transaction()?;
    let names: Vec<&str> = hooks.iter().map(WebhookConfig::id).collect();
    tx.execute(
        "DELETE FROM webhook_cursors WHERE NOT endpoint = ANY($1)",
        &[&names],
    )?;
    tx.execute(
        "DELETE FROM webhook_outbox WHERE NOT endpoint = ANY($1)",
        &[&names],
    )?;
    tx.execute(
        "DELETE FROM webhook_endpoints WHERE NOT name = ANY($1)",
        &[&names],
    )?;
    for h in hooks {
        let new = tx.execute(
            "INSERT INTO webhook_endpoints (name, url, events) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO NOTHING",
            &[&h.id(), &h.url, &h.events],
        )? == 1;
        if new {
            tx.execute(
                "INSERT INTO webhook_cursors (endpoint, room_id, delivered_seq)
                 SELECT $1, id, last_seq FROM rooms WHERE last_seq > 0
                 ON CONFLICT DO NOTHING",
                &[&h.id()],
            )?;
        } else {
            tx.execute(
                "UPDATE webhook_endpoints SET url = $2, events = $3 WHERE name = $1",
                &[&h.id(), &h.url, &h.events],
            )?;
        }
    }
    tx.commit()
}

/// A dead event as the admin routes show it.
#[derive(Serialize)]
pub struct DeadEvent {
    /// Its id in the dead-letter list (for the retry route).
    pub id: i64,
    /// The endpoint's name.
    pub endpoint: String,
    /// The event's id (`webhook-id`).
    pub event_id: String,
    /// The event's type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its room, for a room event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room_id: Option<Uuid>,
    /// Its seq in the room, for a stream entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    /// Attempts made.
    pub attempts: i32,
    /// Why the last attempt failed.
    pub last_error: String,
    /// When it first failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_failed_at: Option<String>,
    /// When it was given up on.
    pub died_at: String,
    /// The event as it would be sent.
    pub event: Value,
}

/// Dead events, oldest first, after `after` (a dead event's id), at most `limit`.
pub fn list(w: &mut Worker, after: i64, limit: i64) -> Result<Vec<DeadEvent>, ApiError> {
    let rows = w.client()?.query(
        "SELECT id, endpoint, event_id, type, room_id, seq, attempts, last_error,
                first_failed_at, died_at, body
         FROM webhook_dead WHERE id > $1 ORDER BY id LIMIT $2",
        &[&after, &limit],
    )?;
    Ok(rows
        .iter()
        .map(|r| DeadEvent {
            id: r.get(0),
            endpoint: r.get(1),
            event_id: r.get(2),
            kind: r.get(3),
            room_id: r.get(4),
            seq: r.get(5),
            attempts: r.get(6),
            last_error: r.get(7),
            first_failed_at: r.get::<_, Option<DateTime<Utc>>>(8).map(iso),
            died_at: iso(r.get(9)),
            event: serde_json::from_str(r.get(10)).unwrap_or(Value::Null),
        })
        .collect())
}

/// Sends dead event `id` again: it moves to the outbox of its endpoint with its body
/// and id unchanged, and is tried with a fresh count. An endpoint no longer configured
/// refuses (409 `endpoint_gone`).
pub fn retry(w: &mut Worker, id: i64) -> Result<(), ApiError> {
    let c = w.client()?;
    let mut tx = c.transaction()?;
    let row = tx.query_opt(
        "DELETE FROM webhook_dead WHERE id = $1 RETURNING endpoint, event_id, type, body",
        &[&id],
    )?;
    let Some(r) = row else {
        return Err(DEAD_NOT_FOUND);
    };
    let (endpoint, event_id, kind, body): (String, String, String, String) =
        (r.get(0), r.get(1), r.get(2), r.get(3));
    let moved = tx.execute(
        "INSERT INTO webhook_outbox (endpoint, event_id, type, body)
         SELECT name, $2, $3, $4 FROM webhook_endpoints WHERE name = $1",
        &[&endpoint, &event_id, &kind, &body],
    )?;
    if moved == 0 {
        return Err(ApiError::Conflict(
            "endpoint_gone",
            "The event's endpoint is no longer configured",
        ));
    }
    tx.commit()?;
    Ok(())
}
