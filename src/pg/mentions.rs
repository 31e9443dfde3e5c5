//! Mentions as stored: the `@` candidates of a message resolved against the room's
//! members in one statement, inside the transaction that stores (or edits) the message,
//! and only for messages that have candidates: a batch without `@` pays nothing.

use postgres::GenericClient;
use std::collections::HashMap;
use uuid::Uuid;

/// What a message's text names: usernames by their case-folded key, and `@room`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Named {
    /// Case-folded keys (`users.username_key`) of the `@username`s, distinct.
    pub keys: Vec<String>,
    /// The text holds `@room`.
    pub room: bool,
    /// Rooms of at most this many members let anyone mention the whole room (the owner
    /// and admins may in any room).
    pub room_max_members: i64,
}

/// One message to resolve: its room, id, the seq where the mention happens, its
/// sender, what it names and whether `@room` is allowed for this sender (decided by
/// the caller with `access::may_mention_room`).
pub struct Pending<'a> {
    /// Room.
    pub room: Uuid,
    /// The mentioning message's id.
    pub message_id: i64,
    /// The seq the mention rows take (the message's, or the edit entry's).
    pub seq: i64,
    /// Author.
    pub sender: Uuid,
    /// What it names.
    pub named: &'a Named,
    /// `@room` notifies every member.
    pub room_allowed: bool,
}

/// Resolves the named users among the room's members (never the sender, never a user
/// who blocked the sender), records a row per notified user (`ON CONFLICT DO NOTHING`:
/// an edit that names someone again notifies nobody twice), and adds them to the
/// message's own list (nothing is ever removed). Returns (message id, its list, its
/// `@room` flag) for each message whose mentions changed.
const RESOLVE_SQL: &str = "WITH c AS (
       SELECT * FROM unnest($1::uuid[], $2::int8[], $3::int8[], $4::uuid[], $5::text[])
            AS c(room_id, message_id, seq, sender, name)),
     t AS (
       SELECT c.room_id, c.message_id, c.seq, c.sender, u.id AS user_id, true AS named
       FROM c JOIN users u ON u.username_key = c.name
       JOIN room_members m ON m.room_id = c.room_id AND m.user_id = u.id
       UNION ALL
       SELECT c.room_id, c.message_id, c.seq, c.sender, m.user_id, false
       FROM c JOIN room_members m ON m.room_id = c.room_id
       WHERE c.name IS NULL),
     ok AS (
       SELECT * FROM t WHERE t.user_id <> t.sender
         AND NOT EXISTS (SELECT 1 FROM user_blocks b
                         WHERE b.user_id = t.user_id AND b.blocked_id = t.sender)),
     ins AS (
       INSERT INTO mentions (user_id, message_id, room_id, seq)
       SELECT DISTINCT ON (user_id, message_id) user_id, message_id, room_id, seq FROM ok
       ORDER BY user_id, message_id
       ON CONFLICT DO NOTHING),
     flags AS (SELECT message_id, bool_or(name IS NULL) AS everyone FROM c GROUP BY message_id),
     ids AS (SELECT message_id, array_agg(DISTINCT user_id) AS ids FROM ok WHERE named
             GROUP BY message_id),
     upd AS (
       UPDATE messages x
       SET mentions = CASE WHEN i.ids IS NULL THEN x.mentions ELSE ARRAY(
             SELECT DISTINCT e FROM unnest(coalesce(x.mentions, '{}') || i.ids) e ORDER BY e) END,
           mentions_room = x.mentions_room OR f.everyone
       FROM flags f LEFT JOIN ids i ON i.message_id = f.message_id
       WHERE x.id = f.message_id AND (i.ids IS NOT NULL OR f.everyone)
       RETURNING x.id, x.mentions, x.mentions_room)
     SELECT id, mentions, mentions_room FROM upd";

/// The statement [`resolve`] runs (the writer prepares it with its others).
pub const SQL: &str = RESOLVE_SQL;

/// A message's mentions after [`resolve`]: the users named and the `@room` flag.
pub type Resolved = HashMap<i64, (Vec<Uuid>, bool)>;

/// Runs [`RESOLVE_SQL`] (`st`: it, prepared or as text) for `pending` inside the
/// caller's transaction; nothing when there is nothing to resolve.
pub fn resolve<T>(
    c: &mut impl GenericClient,
    st: &T,
    pending: &[Pending<'_>],
) -> Result<Resolved, postgres::Error>
where
    T: postgres::ToStatement + ?Sized,
{
    let (mut rooms, mut ids, mut seqs, mut senders, mut names) =
        (vec![], vec![], vec![], vec![], vec![]);
    for p in pending {
        let mut row = |name: Option<&str>| {
            rooms.push(p.room);
            ids.push(p.message_id);
            seqs.push(p.seq);
            senders.push(p.sender);
            names.push(name.map(str::to_owned));
        };
        for k in &p.named.keys {
            row(Some(k));
        }
        if p.named.room && p.room_allowed {
            row(None);
        }
    }
    if rooms.is_empty() {
        return Ok(Resolved::new());
    }
    let rows = c.query(st, &[&rooms, &ids, &seqs, &senders, &names])?;
    Ok(rows
        .iter()
        .map(|r| {
            let list: Option<Vec<Uuid>> = r.get(1);
            (r.get(0), (list.unwrap_or_default(), r.get(2)))
        })
        .collect())
}
