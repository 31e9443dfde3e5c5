//! `--database-url URL`: after the run, the messages table itself is compared with the
//! acks: per room of the run, rows = acked messages and seqs exactly 1..n; under each
//! acked seq, the message that was acked (its client_msg_id) with the content its send
//! sent.

use crate::checks::{AckCheck, DbCheck, DbRoom, ack_digest, db_room, sent_content};
use postgres::fallible_iterator::FallibleIterator;

/// What the run knows of each room (indexed like `rooms`).
pub struct Acked<'a> {
    /// The acked seqs' figures.
    pub checks: &'a [AckCheck],
    /// Sends never acked (they may have been stored).
    pub unacked: &'a [u64],
    /// The acked seqs, as ranges (from every driver, in any order).
    pub ranges: &'a [Vec<(u64, u64)>],
    /// The wrapping sum of `ack_digest` over the acks.
    pub digests: &'a [u64],
    /// The size every sent content was padded to.
    pub size: usize,
}

/// Reads the rooms' figures and rows from `messages` and checks them (see
/// `checks::db_room`, `checks::sent_content`, `checks::ack_digest`).
pub fn check(url: &str, rooms: &[String], acked: &Acked) -> Result<DbCheck, String> {
    let mut client = postgres::Client::connect(url, postgres::NoTls)
        .map_err(|e| format!("database {url}: {e}"))?;
    let err = |e: postgres::Error| format!("database {url}: {e}");
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
        .map_err(err)?;
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
        let a = acked.checks.get(i).copied().unwrap_or_default();
        db_room(
            &mut out,
            room,
            db,
            a,
            acked.unacked.get(i).copied().unwrap_or(0),
        );
    }
    // Every message row, streamed (a soak stores millions): its seq, its client_msg_id
    // and its content as sent. The content is compared here, not shipped.
    let index: std::collections::HashMap<&str, usize> = rooms
        .iter()
        .enumerate()
        .map(|(i, r)| (r.as_str(), i))
        .collect();
    // Each room's acked ranges, merged into disjoint ones in order.
    let ranges: Vec<Vec<(u64, u64)>> = acked
        .ranges
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.sort_unstable();
            let mut merged: Vec<(u64, u64)> = Vec::with_capacity(r.len());
            for (a, b) in r {
                match merged.last_mut() {
                    Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                    _ => merged.push((a, b)),
                }
            }
            merged
        })
        .collect();
    let covered = |i: usize, seq: u64| {
        ranges.get(i).is_some_and(|r| {
            let at = r.partition_point(|&(a, _)| a <= seq);
            at > 0 && seq <= r[at - 1].1
        })
    };
    let mut sums = vec![0u64; rooms.len()];
    let size = i64::try_from(acked.size).unwrap_or(i64::MAX);
    let mut it = client
        .query_raw(
            "SELECT room_id::text, seq, coalesce(client_msg_id, ''), \
             content = sent || repeat('x', greatest($2::int8 - octet_length(sent), 0)::int) \
             FROM (SELECT m.*, format('t=%s s=%s n=%s ', split_part(client_msg_id, '-', 3), \
                   split_part(client_msg_id, '-', 1), split_part(client_msg_id, '-', 2)) AS sent \
                   FROM messages m WHERE room_id = ANY($1::text[]::uuid[]) \
                   AND to_jsonb(m) ->> 'kind' IS DISTINCT FROM 'system') rows",
            [&rooms as &(dyn postgres::types::ToSql + Sync), &size],
        )
        .map_err(err)?;
    while let Some(r) = it.next().map_err(err)? {
        let room: &str = r.get(0);
        let Some(&i) = index.get(room) else { continue };
        let seq = r.get::<_, i64>(1).max(0) as u64;
        if !covered(i, seq) {
            continue; // an unacked send that was stored: nothing to compare with
        }
        let id: &str = r.get(2);
        let as_sent: Option<bool> = r.get(3);
        if as_sent == Some(true) && sent_content(id, acked.size).is_some() {
            sums[i] = sums[i].wrapping_add(ack_digest(seq, id));
        } else {
            out.wrong_content += 1;
            if out.samples.len() < 10 {
                out.samples.push(format!(
                    "room {room}: seq {seq} (client_msg_id {id:?}) does not hold the content that send sent"
                ));
            }
        }
    }
    for (i, room) in rooms.iter().enumerate() {
        let want = acked.digests.get(i).copied().unwrap_or(0);
        if sums[i] != want {
            out.wrong_ack_pairs += 1;
            if out.samples.len() < 10 {
                out.samples.push(format!(
                    "room {room}: the rows under the acked seqs are not the messages acked there"
                ));
            }
        }
    }
    Ok(out)
}
