//! Message notifications by room shard: a node LISTENs only to the shards of the rooms
//! it has sockets in, and a join into a room of a shard it did not listen to yet loses
//! nothing committed around its check.

use crate::support::*;
use serde_json::json;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

fn shard_of(room: &str, shards: u16) -> u16 {
    let id: uuid::Uuid = room.parse().unwrap();
    ((id.as_u128() & 0xFFFF) as u16) % shards
}

/// A room of the given user whose shard is not in `avoid`.
fn room_outside(addr: &str, token: &str, avoid: &[u16]) -> String {
    loop {
        let r = create_room(addr, token);
        if !avoid.contains(&shard_of(&r, 16)) {
            return r;
        }
    }
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ok() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_node_hears_only_the_shards_of_its_rooms() {
    let db = TestDb::new();
    let quiet = start(&db);
    let busy = start(&db);
    let u = register(&quiet.addr(), "sh");
    let mine = create_room(&quiet.addr(), &u.token);
    let other = room_outside(&quiet.addr(), &u.token, &[shard_of(&mine, 16)]);
    assert_eq!(quiet.handle.metrics.listened_shards.load(Relaxed), 0);
    let mut w = Ws::connect(&quiet.addr(), &u.token);
    w.join(&mine, None);
    wait_for("the node listens to its room's shard", || {
        quiet.handle.metrics.listened_shards.load(Relaxed) == 1
    });
    // Traffic in a room of another shard, written through the other node: the quiet
    // node decodes none of it.
    let before = quiet.handle.metrics.notifications.load(Relaxed);
    let mut h = Http::connect(&busy.addr());
    for i in 0..50 {
        post_message(&mut h, &u.token, &other, &format!("elsewhere {i}"));
    }
    post_message(&mut h, &u.token, &mine, "here");
    let live = w.expect("new_message");
    assert_eq!(live["content"], "here");
    let heard = quiet.handle.metrics.notifications.load(Relaxed) - before;
    assert!(heard <= 3, "the quiet node decoded {heard} notifications");
}

#[test]
fn joining_into_a_new_shard_while_messages_flow_loses_nothing() {
    let db = TestDb::new();
    let node = start(&db);
    let writer = start(&db);
    let u = register(&node.addr(), "sj");
    let room = create_room(&node.addr(), &u.token);
    assert_eq!(node.handle.metrics.listened_shards.load(Relaxed), 0);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (flag, addr, token, r) = (stop.clone(), writer.addr(), u.token.clone(), room.clone());
    let sender = std::thread::spawn(move || {
        let mut h = Http::connect(&addr);
        let mut n = 0;
        while !flag.load(Relaxed) {
            post_message(&mut h, &token, &r, &format!("s{n}"));
            n += 1;
        }
        n
    });
    std::thread::sleep(Duration::from_millis(200));
    // Join while the shard is not listened: the join waits for the LISTEN, checks, and
    // then sees every message after its starting point exactly once.
    let mut w = Ws::connect(&node.addr(), &u.token);
    w.send("join_room", json!({"room_id": room, "last_seen_seq": 0}));
    let mut seqs = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(800) {
        if let Some(v) = w.next_within(Duration::from_millis(100)) {
            seqs.extend(message_seqs(&v));
        }
    }
    stop.store(true, Relaxed);
    let sent = sender.join().unwrap();
    let last = sent as i64;
    while (seqs.len() as i64) < last {
        match w.next_within(Duration::from_secs(5)) {
            Some(v) => seqs.extend(message_seqs(&v)),
            None => break,
        }
    }
    assert!(sent > 20, "only {sent} messages were sent");
    assert_exact(&seqs, 1, last);
}

/// The narrow case: the first message after a join into an unlistened shard, with no
/// later message to reveal a gap, must arrive. (The join waits for the shard's LISTEN
/// before its check; here the listener usually LISTENs even sooner, woken by the join's
/// own presence notification, so this checks the outcome, not the race.)
#[test]
fn the_first_message_after_a_join_into_a_new_shard_arrives() {
    let db = TestDb::new();
    let node = start(&db);
    let writer = start(&db);
    let u = register(&node.addr(), "sf");
    let mut used = Vec::new();
    let mut h = Http::connect(&writer.addr());
    for round in 0..6 {
        let room = room_outside(&node.addr(), &u.token, &used);
        used.push(shard_of(&room, 16));
        let mut w = Ws::connect(&node.addr(), &u.token);
        w.join(&room, None);
        post_message(&mut h, &u.token, &room, &format!("first {round}"));
        let m = w.expect("new_message");
        assert_eq!(m["content"], format!("first {round}"));
    }
}

/// Nodes starting together on a fresh database agree on the shard count; a node with
/// another count is refused while they run, and sets the count once none runs.
#[test]
fn nodes_agree_on_the_shard_count() {
    let db = TestDb::new();
    // The schema first, as deploy/cluster.sh does; then three nodes at once.
    drop(start(&db));
    let nodes: Vec<_> = (0..3)
        .map(|_| {
            let url = db.url.clone();
            std::thread::spawn(move || start_on(&url, |c| c.database.notify_shards = 16))
        })
        .collect();
    let nodes: Vec<_> = nodes.into_iter().map(|h| h.join().unwrap()).collect();
    let mut other = config(&db.url);
    other.database.notify_shards = 8;
    let refused = chatd::run(other.clone())
        .err()
        .expect("a node of another count is refused");
    assert!(refused.to_string().contains("notify_shards"), "{refused}");
    drop(nodes);
    let eight = chatd::run(other).expect("with no node running, a new count is taken");
    let stored: String = db
        .client()
        .query_one(
            "SELECT value FROM settings WHERE key = 'notify_shards'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(stored, "8");
    drop(eight);
}

/// A node stops listening to a shard some time after its last socket in the shard's rooms
/// left (not at once: a socket that comes back soon finds it still heard), and then
/// decodes none of the shard's traffic; a socket joining again is heard again.
#[test]
fn a_node_stops_listening_to_a_shard_its_sockets_left() {
    let db = TestDb::new();
    let quiet = start(&db);
    let busy = start(&db);
    let u = register(&quiet.addr(), "shl");
    let room = create_room(&quiet.addr(), &u.token);
    let shards = || quiet.handle.metrics.listened_shards.load(Relaxed);
    let mut w = Ws::connect(&quiet.addr(), &u.token);
    w.join(&room, None);
    wait_for("the node listens to its room's shard", || shards() == 1);
    w.send("leave_room", json!({"room_id": room}));
    w.expect("left_room");
    let left = Instant::now();
    // Still heard for a while after the last socket left...
    while left.elapsed() < Duration::from_secs(20) {
        assert_eq!(shards(), 1, "dropped after {:?}", left.elapsed());
        std::thread::sleep(Duration::from_millis(200));
    }
    // ...then dropped.
    let deadline = left + Duration::from_secs(45);
    while shards() != 0 {
        assert!(Instant::now() < deadline, "still listening after 45 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    let before = quiet.handle.metrics.notifications.load(Relaxed);
    let mut h = Http::connect(&busy.addr());
    for i in 0..30 {
        post_message(&mut h, &u.token, &room, &format!("unheard {i}"));
    }
    std::thread::sleep(Duration::from_millis(500));
    let heard = quiet.handle.metrics.notifications.load(Relaxed) - before;
    assert!(
        heard <= 2,
        "the node decoded {heard} notifications of a dropped shard"
    );
    // Joining again: listened again, and live messages arrive.
    w.join(&room, None);
    wait_for("the node listens again", || shards() == 1);
    post_message(&mut h, &u.token, &room, "heard again");
    let live = w.expect_where("new_message", |m| m["content"] == "heard again");
    assert_eq!(live["room_id"], room.as_str());
}
