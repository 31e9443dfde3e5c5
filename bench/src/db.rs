//! `--database-url URL`: after the run, the messages table itself is compared with the
//! acks: per room of the run, rows = acked messages and seqs exactly 1..n.

use crate::checks::{AckCheck, DbCheck, DbRoom, db_room};

/// Reads the rooms' figures from `messages` and checks them (see `checks::db_room`).
pub fn check(
    url: &str,
    rooms: &[String],
    acked: &[AckCheck],
    unacked: &[u64],
) -> Result<DbCheck, String> {
    let mut client = postgres::Client::connect(url, postgres::NoTls)
        .map_err(|e| format!("database {url}: {e}"))?;
    let rows = client
        .query(
            // System entries (membership changes) are stream entries but no one's send;
            // read through to_jsonb so that a server without the `kind` column works too.
            "SELECT room_id::text, \
             count(*) FILTER (WHERE to_jsonb(m) ->> 'kind' IS DISTINCT FROM 'system'), \
             count(DISTINCT seq), coalesce(min(seq), 0), coalesce(max(seq), 0), count(*) \
             FROM messages m WHERE room_id = ANY($1::text[]::uuid[]) GROUP BY room_id",
            &[&rooms],
        )
        .map_err(|e| format!("database {url}: {e}"))?;
    let mut by_room = std::collections::HashMap::new();
    for r in &rows {
        let id: String = r.get(0);
        let n = |i: usize| r.get::<_, i64>(i).max(0) as u64;
        by_room.insert(
            id,
            DbRoom {
                rows: n(1),
                distinct: n(2),
                min: n(3),
                max: n(4),
                entries: n(5),
            },
        );
    }
    let mut out = DbCheck::default();
    for (i, room) in rooms.iter().enumerate() {
        let db = by_room.get(room).copied().unwrap_or_default();
        let a = acked.get(i).copied().unwrap_or_default();
        db_room(&mut out, room, db, a, unacked.get(i).copied().unwrap_or(0));
    }
    Ok(out)
}
