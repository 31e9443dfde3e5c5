//! The webhook outbox: events that are not entries of a room's stream (a user created
//! or changed, a room created or deleted, a member muted or given a role) written in
//! the transaction that makes them, one row per endpoint that takes their type. With no
//! such endpoint the insert writes nothing. The dispatcher (`hooks/`) sends and deletes
//! them.

use crate::base::model::now_iso;
use postgres::GenericClient;
use serde_json::{Value, json};
use uuid::Uuid;

/// One row per endpoint of `webhook_endpoints` that takes type `$2`.
const RECORD_SQL: &str = "INSERT INTO webhook_outbox (endpoint, event_id, type, body)
    SELECT name, $1, $2, $3 FROM webhook_endpoints
    WHERE $2 = ANY(events) OR '*' = ANY(events)";

/// The body of an event: `{id, type, created_at, room_id?, seq?, data}`.
pub fn body(
    id: &str,
    kind: &str,
    created_at: &str,
    room: Option<(Uuid, i64)>,
    data: &Value,
) -> String {
    let mut b = json!({"id": id, "type": kind, "created_at": created_at});
    if let (Some((room, seq)), Some(o)) = (room, b.as_object_mut()) {
        o.insert("room_id".into(), json!(room));
        if seq > 0 {
            o.insert("seq".into(), json!(seq));
        }
    }
    if let Some(o) = b.as_object_mut() {
        o.insert("data".into(), data.clone());
    }
    b.to_string()
}

/// Records event `kind` about `room` (if any) with `data`, inside the caller's
/// transaction: sent once it commits, never if it rolls back.
pub fn record(
    c: &mut impl GenericClient,
    kind: &str,
    room: Option<Uuid>,
    data: &Value,
) -> Result<(), postgres::Error> {
    let id = format!("evt_{}", Uuid::now_v7().simple());
    let b = body(&id, kind, &now_iso(), room.map(|r| (r, 0)), data);
    c.execute(RECORD_SQL, &[&id, &kind, &b])?;
    Ok(())
}
