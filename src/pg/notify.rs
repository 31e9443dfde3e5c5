//! Every notification that travels between nodes, typed, and its one encoding.
//!
//! Writers, the presence thread and the account and room routes publish these values;
//! the listener decodes them and hands them on as values. The JSON shapes (short keys,
//! a `t` tag) are the wire between nodes of different versions during a rolling
//! restart: change them only by adding optional fields.

use crate::base::model::Message;
use postgres::GenericClient;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use uuid::Uuid;

/// Channel carrying message batches between nodes (with one shard; with several, the
/// shard's number is appended: `chat_messages_3`).
pub const MESSAGES_CHANNEL: &str = "chat_messages";
/// Most message notification shards (a node's listened set is a 64-bit mask).
pub const MAX_SHARDS: u16 = 64;

/// The shard of a room's message notifications: the last 16 bits of its id modulo the
/// shard count. The same expression in SQL is [`SHARD_CHANNEL_SQL`].
pub fn shard_of(room: Uuid, shards: u16) -> u16 {
    ((room.as_u128() & 0xFFFF) as u16) % shards.max(1)
}

/// The channel of shard `shard` among `shards`.
pub fn shard_channel(shard: u16, shards: u16) -> String {
    if shards <= 1 {
        MESSAGES_CHANNEL.to_string()
    } else {
        format!("{MESSAGES_CHANNEL}_{shard}")
    }
}

/// The channel of room `$1` in SQL, with the cluster's shard count from `settings` (the
/// stream entries written outside the batched writer notify with it): the same as
/// [`shard_channel`] of [`shard_of`].
macro_rules! shard_channel_sql {
    () => {
        "(SELECT CASE WHEN n.v <= 1 THEN 'chat_messages'
             ELSE 'chat_messages_' || (('x' || right($1::uuid::text, 4))::bit(16)::int % n.v) END
          FROM (SELECT coalesce((SELECT value::int FROM settings
                                 WHERE key = 'notify_shards'), 1) AS v) n)"
    };
}
pub(crate) use shard_channel_sql;
/// Channel for ephemeral events (presence, typing, revocations, membership and profile
/// changes).
pub const EVENTS_CHANNEL: &str = "chat_events";
/// NOTIFY payloads must stay under 8000 bytes; keep a margin.
const MAX_NOTIFY_BYTES: usize = 7900;

/// A room's stored batch: the messages when they fit in one payload, or only the seq
/// range (a pointer the receiver resolves with one query).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Batch {
    /// Room.
    #[serde(rename = "r")]
    pub room: Uuid,
    /// First seq of the batch.
    #[serde(rename = "f")]
    pub first: i64,
    /// Last seq of the batch.
    #[serde(rename = "l")]
    pub last: i64,
    /// Commit time in µs since the epoch (for lag metrics).
    #[serde(rename = "t")]
    pub at_micros: i64,
    /// The messages, when they fit in one payload.
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    pub msgs: Option<Vec<Message>>,
}

/// Everything carried on the events channel.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "t", rename_all = "lowercase")]
pub enum Event {
    /// Sessions were revoked: their tokens are refused and their sockets closed.
    Revoke {
        /// Session ids.
        #[serde(rename = "s")]
        sessions: Vec<Uuid>,
    },
    /// An ephemeral event for the joined sockets of a room.
    Room {
        /// Room.
        #[serde(rename = "r")]
        room: Uuid,
        /// Not sent to this user's sockets.
        #[serde(rename = "x", default)]
        except: Option<Uuid>,
        /// What happened.
        #[serde(flatten)]
        event: RoomEvent,
    },
    /// A user lost membership of a room: their sockets leave it.
    Kick {
        /// Room.
        #[serde(rename = "r")]
        room: Uuid,
        /// User.
        #[serde(rename = "u")]
        user: Uuid,
        /// Why: `left`, `kicked` or `banned` (absent from older nodes: `left`).
        #[serde(rename = "w", default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A room was deleted: every socket leaves it.
    Gone {
        /// Room.
        #[serde(rename = "r")]
        room: Uuid,
    },
    /// Read marks moved: the users' sockets learn their read state, and rooms with
    /// receipts learn who read how far.
    Reads {
        /// The marks.
        #[serde(rename = "m")]
        marks: Vec<ReadMark>,
    },
    /// A user's standing in a room changed where only they need to know at once: their
    /// sockets on every node get `membership`.
    User {
        /// User.
        #[serde(rename = "u")]
        user: Uuid,
        /// What clients receive as `data`.
        #[serde(rename = "d")]
        data: MembershipData,
    },
    /// A user's public profile changed: every node tells the sockets of those who share
    /// a room with them (`user_updated`, read afresh there, so only the id travels).
    Profile {
        /// User.
        #[serde(rename = "u")]
        user: Uuid,
    },
}

/// `membership` data: what changed in a user's standing in a room.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MembershipData {
    /// Room.
    pub room_id: Uuid,
    /// `invited` (an invitation waits), `direct` (a direct room with the user was
    /// opened), `role` (their role changed) or `muted` (muted or unmuted).
    pub change: String,
    /// Who made the change.
    pub by: UserRef,
    /// The new role (`role`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Muted or not (`muted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub muted: Option<bool>,
    /// The room as `GET /rooms/:id` shows it (`invited`, `direct`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<serde_json::Value>,
}

/// A user named in an event.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct UserRef {
    /// User id.
    pub id: Uuid,
    /// Username.
    pub username: String,
}

/// One member's read position in a room.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReadMark {
    /// Room.
    #[serde(rename = "r")]
    pub room: Uuid,
    /// Member.
    #[serde(rename = "u")]
    pub user: Uuid,
    /// The member's last read seq.
    #[serde(rename = "s")]
    pub seq: i64,
    /// Whether the user's own sockets get `read_state`.
    #[serde(rename = "o", default)]
    pub own: bool,
    /// Whether the room's other members get a `receipt`.
    #[serde(rename = "c", default)]
    pub receipt: bool,
}

/// Read marks in chunks far below the 8000-byte payload limit.
pub fn reads(marks: &[ReadMark]) -> Vec<Event> {
    marks
        .chunks(60)
        .map(|c| Event::Reads { marks: c.to_vec() })
        .collect()
}

/// Ephemeral room events; the payload is what clients receive as `data`.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "e", content = "d", rename_all = "snake_case")]
pub enum RoomEvent {
    /// A user came online or went offline in the room.
    Presence(PresenceData),
    /// A user started or stopped typing.
    Typing(TypingData),
    /// A user's first socket joined the room.
    UserJoined(WhoData),
    /// A user's last socket left the room.
    UserLeft(WhoData),
}

impl RoomEvent {
    /// The WebSocket event name.
    pub fn name(&self) -> &'static str {
        match self {
            RoomEvent::Presence(_) => "presence",
            RoomEvent::Typing(_) => "typing",
            RoomEvent::UserJoined(_) => "user_joined",
            RoomEvent::UserLeft(_) => "user_left",
        }
    }
}

/// `presence` data.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PresenceData {
    /// User.
    pub user_id: Uuid,
    /// Room.
    pub room_id: Uuid,
    /// Node holding the socket (between nodes only: clients never see it).
    pub node_id: String,
    /// When.
    pub last_seen: String,
    /// Username.
    pub username: String,
    /// `online` or `offline`.
    pub status: String,
}

/// `typing` data.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TypingData {
    /// User.
    pub user_id: Uuid,
    /// Room.
    pub room_id: Uuid,
    /// Username.
    pub username: String,
    /// Started (true) or stopped.
    pub typing: bool,
    /// When.
    pub started_at: String,
}

/// `user_joined` / `user_left` data.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct WhoData {
    /// User.
    pub user_id: Uuid,
    /// Room.
    pub room_id: Uuid,
    /// Username.
    pub username: String,
}

/// A notification as the listener hands it on.
#[derive(Debug, PartialEq)]
pub enum Notification {
    /// A room's stored batch.
    Messages(Batch),
    /// Anything else.
    Event(Event),
}

/// Decodes a payload received on `channel`.
pub fn decode(channel: &str, payload: &str) -> Option<Notification> {
    let n = if channel.starts_with(MESSAGES_CHANNEL) {
        serde_json::from_str(payload).map(Notification::Messages)
    } else {
        serde_json::from_str(payload).map(Notification::Event)
    };
    n.map_err(|e| log::warn!("ignoring malformed notification on {channel}: {e}"))
        .ok()
}

impl Batch {
    /// The payload for one room's batch (ascending, contiguous): the messages, or a
    /// pointer when they do not fit.
    pub fn payload(msgs: &[Arc<Message>]) -> String {
        let (Some(first), Some(last)) = (msgs.first(), msgs.last()) else {
            return String::new();
        };
        let mut batch = Batch {
            room: first.room_id,
            first: first.seq,
            last: last.seq,
            at_micros: chrono::Utc::now().timestamp_micros(),
            msgs: Some(msgs.iter().map(|m| (**m).clone()).collect()),
        };
        let full = serde_json::to_string(&batch).unwrap_or_default();
        if !full.is_empty() && full.len() < MAX_NOTIFY_BYTES {
            return full;
        }
        batch.msgs = None;
        serde_json::to_string(&batch).unwrap_or_default()
    }

    /// The payloads for one room's batch (ascending, contiguous), in seq order: as few
    /// notifications as carry every message inline, a pointer only for a message too
    /// large for a payload of its own. A listener then resolves no pointer for a batch
    /// of ordinary messages, however many there are: a query per batch on the
    /// listener's single connection is what limits delivery when PostgreSQL is busy.
    pub fn payloads(msgs: &[Arc<Message>]) -> Vec<String> {
        // Room, seqs and time around the messages, and a comma per message.
        const ENVELOPE: usize = 160;
        let mut out = Vec::new();
        let mut start = 0;
        let mut size = ENVELOPE;
        for (i, m) in msgs.iter().enumerate() {
            let len = serde_json::to_string(&**m).map_or(MAX_NOTIFY_BYTES, |j| j.len() + 1);
            if i > start && size + len >= MAX_NOTIFY_BYTES {
                out.push(Batch::payload(&msgs[start..i]));
                start = i;
                size = ENVELOPE;
            }
            size += len;
        }
        if start < msgs.len() {
            out.push(Batch::payload(&msgs[start..]));
        }
        out
    }
}

impl Batch {
    /// The payload of `m` alone, cut where the values only its insert knows go, in this
    /// order: seq, seq, µs, id, seq, created_at (`sql/0027_send_one.sql` joins the parts
    /// around them, so the encoding stays this one). `None` when the message would not
    /// travel inline, or the encoding no longer has the shape cut here.
    pub fn one_parts(m: &Message) -> Option<[String; 7]> {
        let blank = Message {
            id: 0,
            seq: 0,
            created_at: String::new(),
            ..m.clone()
        };
        let batch = Batch {
            room: m.room_id,
            first: 0,
            last: 0,
            at_micros: 0,
            msgs: Some(vec![blank]),
        };
        let s = serde_json::to_string(&batch).ok()?;
        // The values are numbers of at most 20 digits and a 24-byte time.
        if s.len() + 5 * 20 + 24 >= MAX_NOTIFY_BYTES {
            return None;
        }
        // Each key is found after the previous one. A key with its quotes cannot match
        // inside a string value, whose quotes are escaped: only the key itself matches.
        let holes = [
            "\"f\":0",
            "\"l\":0",
            "\"t\":0",
            "\"id\":0",
            "\"seq\":0",
            "\"created_at\":\"\"",
        ];
        let mut parts: [String; 7] = Default::default();
        let mut at = 0;
        for (i, key) in holes.iter().enumerate() {
            let start = at + s[at..].find(key)?;
            // The value starts after the key's colon (inside the quotes for the time, an
            // empty string: the closing quote starts the next part); a number is `0`.
            let value = start + key.len() - 1;
            parts[i] = s[at..value].to_string();
            at = value + usize::from(i < 5);
        }
        parts[6] = s[at..].to_string();
        Some(parts)
    }
}

/// Publishes events on the events channel inside the caller's transaction (delivered
/// at commit) or at once.
pub fn publish(c: &mut impl GenericClient, events: &[Event]) -> Result<(), postgres::Error> {
    for e in events {
        let payload = serde_json::to_string(e).unwrap_or_default();
        c.execute("SELECT pg_notify($1, $2)", &[&EVENTS_CHANNEL, &payload])?;
    }
    Ok(())
}

/// Revocation events for `sessions`, in chunks far below the 8000-byte payload limit.
pub fn revocations(sessions: &[Uuid]) -> Vec<Event> {
    sessions
        .chunks(100)
        .map(|c| Event::Revoke {
            sessions: c.to_vec(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(seq: i64, content: &str) -> Arc<Message> {
        Arc::new(Message {
            id: seq,
            seq,
            room_id: Uuid::nil(),
            user_id: Uuid::nil(),
            username: "u".into(),
            content: content.into(),
            created_at: "2026-01-01T00:00:00.000Z".into(),
            client_msg_id: None,
            ..Default::default()
        })
    }

    #[test]
    fn small_batches_travel_whole_large_ones_as_pointers() {
        let small = Batch::payload(&[msg(1, "a"), msg(2, "b")]);
        let Some(Notification::Messages(b)) = decode(MESSAGES_CHANNEL, &small) else {
            panic!("{small}")
        };
        assert_eq!((b.first, b.last, b.msgs.map(|m| m.len())), (1, 2, Some(2)));
        let big = Batch::payload(&[msg(3, &"x".repeat(8000))]);
        assert!(big.len() < 8000);
        let Some(Notification::Messages(b)) = decode(MESSAGES_CHANNEL, &big) else {
            panic!("{big}")
        };
        assert_eq!((b.first, b.last), (3, 3));
        assert!(b.msgs.is_none());
    }

    #[test]
    fn a_large_batch_travels_inline_in_several_payloads() {
        let msgs: Vec<_> = (1..=100).map(|s| msg(s, &"y".repeat(200))).collect();
        let payloads = Batch::payloads(&msgs);
        assert!(payloads.len() > 2, "{}", payloads.len());
        let mut next = 1;
        for p in &payloads {
            assert!(p.len() < MAX_NOTIFY_BYTES, "{}", p.len());
            let Some(Notification::Messages(b)) = decode(MESSAGES_CHANNEL, p) else {
                panic!("{p}")
            };
            let inline = b.msgs.expect("inline");
            assert_eq!((b.first, inline.first().map(|m| m.seq)), (next, Some(next)));
            assert_eq!(b.last, inline.last().unwrap().seq);
            next = b.last + 1;
        }
        assert_eq!(next, 101, "every message once, in order");
        // A message too large for any payload goes as a pointer of its own.
        let mixed = [msg(1, "a"), msg(2, &"x".repeat(9000)), msg(3, "c")];
        let kinds: Vec<(i64, i64, bool)> = Batch::payloads(&mixed)
            .iter()
            .map(|p| match decode(MESSAGES_CHANNEL, p) {
                Some(Notification::Messages(b)) => (b.first, b.last, b.msgs.is_some()),
                _ => panic!("{p}"),
            })
            .collect();
        assert_eq!(kinds, [(1, 1, true), (2, 2, false), (3, 3, true)]);
    }

    /// The parts joined around the values as `sql/0027_send_one.sql` does.
    fn join_one(p: &[String; 7], seq: i64, at: i64, id: i64, created: &str) -> String {
        format!(
            "{}{seq}{}{seq}{}{at}{}{id}{}{seq}{}{created}{}",
            p[0], p[1], p[2], p[3], p[4], p[5], p[6]
        )
    }

    #[test]
    fn one_message_parts_join_into_its_payload() {
        let tricky = r#"he said "created_at":"" and "seq":0 \ \"id\":0 ünï"#;
        let mut m = (*msg(0, tricky)).clone();
        m.client_msg_id = Some("k\"1".into());
        m.username = "\"f\":0".into();
        let parts = Batch::one_parts(&m).expect("parts");
        let text = join_one(
            &parts,
            42,
            1_700_000_000_000_000,
            9_000_000_000,
            "2026-12-07T21:00:00.123Z",
        );
        let Some(Notification::Messages(b)) = decode(MESSAGES_CHANNEL, &text) else {
            panic!("{text}")
        };
        assert_eq!(
            (b.room, b.first, b.last, b.at_micros),
            (m.room_id, 42, 42, 1_700_000_000_000_000)
        );
        let got = b.msgs.expect("inline");
        let want = Message {
            id: 9_000_000_000,
            seq: 42,
            created_at: "2026-12-07T21:00:00.123Z".into(),
            ..m.clone()
        };
        assert_eq!(got, vec![want]);
        // A message too large to travel inline has no parts (the batched path sends it).
        assert!(Batch::one_parts(&msg(1, &"x".repeat(7800))).is_none());
    }

    #[test]
    fn shards_spread_rooms_and_name_channels() {
        let mut seen = [0u32; 16];
        for _ in 0..1600 {
            seen[shard_of(Uuid::now_v7(), 16) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 50), "{seen:?}");
        let room: Uuid = "0190b7a4-7c1e-7000-8000-00000000abcd".parse().unwrap();
        assert_eq!(shard_of(room, 16), (0xabcd % 16) as u16);
        assert_eq!(shard_channel(3, 16), "chat_messages_3");
        assert_eq!(shard_channel(0, 1), "chat_messages");
        assert!(matches!(
            decode("chat_messages_3", &Batch::payload(&[msg(1, "a")])),
            Some(Notification::Messages(_))
        ));
    }

    /// The shapes other nodes (of this or the previous version) send and expect.
    #[test]
    fn events_keep_their_wire_shape() {
        let room: Uuid = "0190b7a4-7c1e-7000-8000-000000000001".parse().unwrap();
        let user: Uuid = "0190b7a4-7c1e-7000-8000-000000000002".parse().unwrap();
        let cases = [
            (
                Event::Revoke {
                    sessions: vec![user],
                },
                serde_json::json!({"t": "revoke", "s": [user]}),
            ),
            (
                Event::Kick {
                    room,
                    user,
                    reason: None,
                },
                serde_json::json!({"t": "kick", "r": room, "u": user}),
            ),
            (
                Event::Kick {
                    room,
                    user,
                    reason: Some("banned".into()),
                },
                serde_json::json!({"t": "kick", "r": room, "u": user, "w": "banned"}),
            ),
            (
                Event::Room {
                    room,
                    except: Some(user),
                    event: RoomEvent::UserLeft(WhoData {
                        user_id: user,
                        room_id: room,
                        username: "ann".into(),
                    }),
                },
                serde_json::json!({"t": "room", "r": room, "x": user, "e": "user_left",
                    "d": {"user_id": user, "room_id": room, "username": "ann"}}),
            ),
            (
                Event::Profile { user },
                serde_json::json!({"t": "profile", "u": user}),
            ),
        ];
        for (event, want) in cases {
            let text = serde_json::to_string(&event).unwrap();
            assert_eq!(
                serde_json::from_str::<serde_json::Value>(&text).unwrap(),
                want
            );
            assert_eq!(
                decode(EVENTS_CHANNEL, &want.to_string()),
                Some(Notification::Event(event))
            );
        }
        assert_eq!(decode(EVENTS_CHANNEL, r#"{"t":"dance"}"#), None);
    }
}
