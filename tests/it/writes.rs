//! The batched writer under mixed traffic: many sockets sending at once to several
//! rooms, with sends it must refuse and retries it must not store twice, all landing in
//! the same write transactions.

use crate::support::*;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

#[test]
fn mixed_batches_keep_seqs_gapless_and_sends_exactly_once() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let users: Vec<User> = (0..3).map(|_| register(&a, "wr")).collect();
    // Room r: created by user r, joined by user r + 1 (mod 3); user r + 2 is refused.
    let rooms: Vec<String> = (0..3).map(|r| create_room(&a, &users[r].token)).collect();
    for r in 0..3 {
        join_room(&a, &users[(r + 1) % 3].token, &rooms[r]);
    }
    let missing = "00000000-0000-7000-8000-000000000000";
    const PER_SOCKET: usize = 150;
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let a = a.clone();
            let user = users[t % 3].clone();
            let rooms = rooms.clone();
            std::thread::spawn(move || {
                let mut ws = Ws::connect(&a, &user.token);
                let u = t % 3;
                // Fire everything without waiting, so that the writer sees mixed queues.
                let mut expected: HashMap<String, &'static str> = HashMap::new();
                for i in 0..PER_SOCKET {
                    let r = i % 3;
                    let cmid = format!("s{t}-m{i}");
                    let (room, outcome) = match i % 10 {
                        9 => (missing.to_string(), "room_not_found"),
                        _ if r == (u + 1) % 3 => (rooms[r].clone(), "not_member"),
                        _ => (rooms[r].clone(), "ack"),
                    };
                    ws.send(
                        "send_message",
                        json!({"room_id": room, "content": format!("{cmid} body"), "client_msg_id": cmid}),
                    );
                    expected.insert(cmid.clone(), outcome);
                    // Every fifth accepted send is retried at once with the same key.
                    if outcome == "ack" && i % 5 == 0 {
                        ws.send(
                            "send_message",
                            json!({"room_id": room, "content": format!("{cmid} body"), "client_msg_id": cmid}),
                        );
                    }
                }
                // Collect one answer per send (two for the retried ones).
                let mut acks: HashMap<String, Vec<(i64, i64)>> = HashMap::new();
                let mut errors: HashMap<String, String> = HashMap::new();
                let retried = expected
                    .iter()
                    .filter(|(k, v)| {
                        **v == "ack" && k.rsplit("-m").next().unwrap().parse::<usize>().unwrap() % 5 == 0
                    })
                    .count();
                let want = expected.len() + retried;
                let deadline = Instant::now() + Duration::from_secs(30);
                let mut got = 0;
                while got < want && Instant::now() < deadline {
                    let Some(f) = ws.next_within(Duration::from_millis(200)) else {
                        continue;
                    };
                    let d = &f["data"];
                    match f["event"].as_str() {
                        Some("message_ack") => {
                            got += 1;
                            acks.entry(d["client_msg_id"].as_str().unwrap().to_string())
                                .or_default()
                                .push((d["seq"].as_i64().unwrap(), d["id"].as_i64().unwrap()));
                        }
                        Some("error") => {
                            got += 1;
                            errors.insert(
                                d["client_msg_id"].as_str().unwrap_or("?").to_string(),
                                d["code"].as_str().unwrap_or("?").to_string(),
                            );
                        }
                        _ => {}
                    }
                }
                assert_eq!(got, want, "socket {t}: answers");
                for (cmid, outcome) in &expected {
                    if *outcome == "ack" {
                        let a = &acks[cmid];
                        assert!(a.iter().all(|x| *x == a[0]), "{cmid}: retry got another message {a:?}");
                    } else {
                        assert_eq!(errors.get(cmid).map(String::as_str), Some(*outcome), "{cmid}");
                    }
                }
                acks.into_iter()
                    .map(|(k, v)| (k, v[0]))
                    .collect::<HashMap<String, (i64, i64)>>()
            })
        })
        .collect();
    let mut acked: HashMap<String, (i64, i64)> = HashMap::new();
    for t in threads {
        acked.extend(t.join().unwrap());
    }
    // The table: per room, seqs 1..n with no gap, and exactly the acked messages.
    let mut c = db.client();
    let mut stored: HashSet<String> = HashSet::new();
    for room in &rooms {
        let room_id: uuid::Uuid = room.parse().unwrap();
        let rows = c
            .query(
                "SELECT seq, id, client_msg_id, kind FROM messages WHERE room_id = $1 ORDER BY seq",
                &[&room_id],
            )
            .unwrap();
        for (i, r) in rows.iter().enumerate() {
            let seq: i64 = r.get(0);
            assert_eq!(seq, i as i64 + 1, "room {room}: seqs must be gapless");
            // Membership changes are system entries of the same stream.
            if r.get::<_, &str>(3) == "system" {
                continue;
            }
            let cmid: String = r.get(2);
            assert_eq!(acked.get(&cmid), Some(&(seq, r.get::<_, i64>(1))), "{cmid}");
            assert!(stored.insert(cmid));
        }
        let last: i64 = c
            .query_one("SELECT last_seq FROM rooms WHERE id = $1", &[&room_id])
            .unwrap()
            .get(0);
        assert_eq!(last, rows.len() as i64);
    }
    assert_eq!(stored.len(), acked.len());
}
