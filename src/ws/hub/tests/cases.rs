//! Joins, live routing, gaps and their retries, catch-up, kicks, read marks and the
//! per-user index, sends and typing: each driven through the hub's own entry points.

use super::*;

#[test]
fn a_join_waits_for_its_shard_then_live_messages_reach_the_socket() {
    let mut w = World::new();
    w.open(1, 1);
    w.client(1, ev("join_room", json!({"room_id": ROOM})));
    // Subscribed at once, checked only once the room's shard is heard.
    assert!(w.interest.has(ROOM));
    assert!(w.store.take().is_empty());
    w.live(&[1]); // arrives before the position is known: held, not sent
    assert!(w.frames(1).is_empty());
    w.interest.set_active(w.interest.wanted());
    w.event(LoopEvent::ShardsReady);
    let mut calls = w.store.take();
    assert_eq!(calls.len(), 1);
    let Call::Join(room, None, reply) = calls.remove(0) else {
        panic!("a join check")
    };
    assert_eq!(room, ROOM);
    reply(Ok(JoinData {
        room_seq: 0,
        history: None,
    }));
    w.deliver_posted();
    // What arrived while the join was checked follows `joined_room` (from the room's
    // recent buffer).
    let f = w.frames(1);
    assert_eq!(names(&f)[0], "joined_room");
    assert_eq!(seqs(&f), [1]);
    assert!(matches!(&w.store.take()[..], [Call::Presence]));
    w.live(&[2, 3]);
    assert_eq!(seqs(&w.frames(1)), [2, 3]);
}

#[test]
fn a_refused_join_undoes_the_subscription_and_names_the_code() {
    let mut w = World::new();
    w.open(1, 1);
    w.client(1, ev("join_room", json!({"room_id": ROOM})));
    w.interest.set_active(w.interest.wanted());
    w.event(LoopEvent::ShardsReady);
    let Some(Call::Join(_, _, reply)) = w.store.take().pop() else {
        panic!("a join check")
    };
    reply(Err(ApiError::Forbidden("not_member", "no")));
    w.deliver_posted();
    let f = w.frames(1);
    assert_eq!(names(&f), ["error"]);
    assert_eq!(f[0].1["code"], "not_member");
    assert!(!w.interest.has(ROOM));
    w.live(&[1]);
    assert!(w.frames(1).is_empty());
}

#[test]
fn a_gap_is_fetched_and_later_messages_wait_for_it() {
    let mut w = World::new();
    w.open(1, 1);
    w.join(1, 5);
    w.frames(1);
    w.live(&[6]);
    w.live(&[9, 10]); // 7 and 8 missing
    assert_eq!(seqs(&w.frames(1)), [6]);
    let calls = w.store.take();
    let [Call::Range(room, 6, 8, _)] = &calls[..] else {
        panic!("one fetch of (6, 8]: {calls:?}")
    };
    assert_eq!(*room, ROOM);
    w.live(&[11]); // still waits behind the gap
    assert!(w.frames(1).is_empty());
    let Some(Call::Range(_, _, _, reply)) = calls.into_iter().next() else {
        unreachable!()
    };
    reply(Ok(vec![msg(7), msg(8)]));
    w.deliver_posted();
    assert_eq!(seqs(&w.frames(1)), [7, 8, 9, 10, 11]);
}

#[test]
fn a_gap_fetch_the_workers_refuse_is_retried_on_a_later_sweep() {
    let mut w = World::new();
    w.open(1, 1);
    w.join(1, 0);
    w.store.busy.store(true, Ordering::Relaxed);
    w.live(&[2]);
    let calls = w.store.take();
    assert!(calls.is_empty(), "{calls:?}");
    w.store.busy.store(false, Ordering::Relaxed);
    w.hub.sweep(Instant::now(), &mut w.socks);
    assert!(w.store.take().is_empty(), "not before the pause");
    let later = Instant::now() + crate::ws::gaps::RETRY_AFTER;
    w.hub.sweep(later, &mut w.socks);
    let calls = w.store.take();
    let [Call::Range(_, 0, i64::MAX, _)] = &calls[..] else {
        panic!("the fetch again")
    };
    let Some(Call::Range(_, _, _, reply)) = calls.into_iter().next() else {
        unreachable!()
    };
    reply(Ok(vec![msg(1), msg(2)]));
    w.deliver_posted();
    assert_eq!(seqs(&w.frames(1)), [1, 2]);
}

#[test]
fn a_socket_behind_catches_up_from_the_store_without_a_duplicate() {
    let mut w = World::new();
    w.open(1, 1);
    w.join(1, 2000);
    w.frames(1);
    w.open(2, 2);
    w.client(
        2,
        ev("join_room", json!({"room_id": ROOM, "last_seen_seq": 1990})),
    );
    let Some(Call::Join(_, Some(1990), reply)) = w.store.take().pop() else {
        panic!("a join check from 1990")
    };
    // The check found the room at 1995; 1996 arrived live meanwhile... and the room's
    // recent buffer starts later than the socket: the rest comes from the store.
    reply(Ok(JoinData {
        room_seq: 1995,
        history: Some(Arc::new(crate::ws::JoinHistory::new(
            1990,
            vec![msg(1991), msg(1992)],
            true,
            None,
        ))),
    }));
    w.deliver_posted();
    let f = w.frames(2);
    assert_eq!(names(&f), ["history", "joined_room"]);
    assert_eq!(f[0].1["next_cursor"], 1992);
    let calls = w.store.take();
    let Some(Call::Range(_, 1992, 2000, reply)) =
        calls.into_iter().find(|c| matches!(c, Call::Range(..)))
    else {
        panic!("a catch-up read of (1992, 2000]")
    };
    w.live(&[2001]); // the socket is behind: it does not get 2001 before 1993..2000
    assert_eq!(seqs(&w.frames(1)), [2001]);
    assert!(w.frames(2).is_empty());
    reply(Ok((1993..=2000).map(msg).collect()));
    w.deliver_posted();
    assert_eq!(seqs(&w.frames(2)), (1993..=2001).collect::<Vec<_>>());
}

#[test]
fn kicks_and_read_marks_follow_the_per_user_index() {
    let mut w = World::new();
    w.open(1, 1);
    w.open(2, 1);
    w.open(3, 2);
    for k in [1, 2, 3] {
        w.join(k, 0);
        w.frames(k);
    }
    w.store.take();
    let marks = vec![ReadMark {
        room: ROOM,
        user: Uuid::from_u128(1),
        seq: 4,
        own: true,
        receipt: false,
    }];
    w.event(LoopEvent::Reads(Arc::new(marks)));
    assert_eq!(names(&w.frames(1)), ["read_state"]);
    assert_eq!(names(&w.frames(2)), ["read_state"]);
    assert!(w.frames(3).is_empty());
    // User 1 is kicked: both of its sockets leave, user 2 stays.
    let reason: Arc<str> = Arc::from("kicked");
    w.event(LoopEvent::Kick {
        room: ROOM,
        user: Uuid::from_u128(1),
        reason,
    });
    for k in [1, 2] {
        let f = w.frames(k);
        assert_eq!(names(&f), ["left_room"]);
        assert_eq!(f[0].1["reason"], "kicked");
    }
    w.live(&[1]);
    assert!(w.frames(1).is_empty() && w.frames(2).is_empty());
    assert_eq!(seqs(&w.frames(3)), [1]);
    // A socket that closes leaves the index: the user's other socket still hears.
    let (s, _) = w.socks.0.remove(&1).unwrap();
    w.hub.closed(1, s);
    assert_eq!(w.hub.users.keys(Uuid::from_u128(1)), &[2]);
    let (s, _) = w.socks.0.remove(&3).unwrap();
    w.hub.closed(3, s);
    assert!(w.hub.users.keys(Uuid::from_u128(2)).is_empty());
    assert!(!w.interest.has(ROOM), "the last socket of the room left");
}

#[test]
fn sends_typing_and_marks_go_to_the_store_only_once_joined() {
    let mut w = World::new();
    w.open(1, 1);
    let send = ev(
        "send_message",
        json!({"room_id": ROOM, "content": "hi", "client_msg_id": "c1"}),
    );
    w.client(1, send.clone());
    // Sending needs no join (the writer decides access); typing and marks do.
    assert!(matches!(&w.store.take()[..], [Call::Send(d)] if d.content == "hi"));
    w.client(1, ev("typing_start", json!({"room_id": ROOM})));
    w.client(1, ev("mark_read", json!({"room_id": ROOM, "seq": 3})));
    let f = w.frames(1);
    assert_eq!(names(&f), ["error", "error"]);
    assert!(f.iter().all(|(_, d)| d["code"] == "not_member"), "{f:?}");
    assert!(w.store.take().is_empty());
    w.join(1, 3);
    w.store.take();
    w.client(1, ev("typing_start", json!({"room_id": ROOM})));
    w.client(1, ev("mark_read", json!({"room_id": ROOM, "seq": 3})));
    let calls = w.store.take();
    assert!(
        matches!(&calls[..], [Call::Typing(r, true), Call::Mark(m, 3)] if *r == ROOM && *m == ROOM)
    );
    // A change the workers cannot take is answered `unavailable` on the socket.
    w.frames(1);
    w.client(
        1,
        ev(
            "edit_message",
            json!({"room_id": ROOM, "message_id": 1, "content": "x"}),
        ),
    );
    let f = w.frames(1);
    assert_eq!(names(&f), ["error"]);
    assert_eq!(f[0].1["code"], "unavailable");
}

#[test]
fn one_read_brings_every_socket_given_it_up_to_the_room_without_a_second_read() {
    let mut w = World::new();
    let read = Arc::new(crate::ws::JoinHistory::new(
        1990,
        (1991..=2150).map(msg).collect(),
        false,
        None,
    ));
    let mut got = Vec::new();
    for k in [1, 2] {
        w.open(k, k as u128);
        w.client(
            k,
            ev("join_room", json!({"room_id": ROOM, "last_seen_seq": 1990})),
        );
        w.interest.set_active(w.interest.wanted());
        w.event(LoopEvent::ShardsReady);
        let reply = w.store.take().into_iter().find_map(|c| match c {
            Call::Join(_, Some(1990), reply) => Some(reply),
            _ => None,
        });
        reply.expect("a join check from 1990")(Ok(JoinData {
            room_seq: 2150,
            history: Some(read.clone()),
        }));
        w.deliver_posted();
        let f = w.frames(k);
        assert_eq!(names(&f), ["history", "joined_room", "new_message_batch"]);
        assert_eq!(f[0].1["messages"].as_array().unwrap().len(), 100);
        assert_eq!(f[0].1["next_cursor"], 2090);
        assert_eq!(f[0].1["has_more"], true);
        assert_eq!(seqs(&f[2..]), (2091..=2150).collect::<Vec<_>>());
        let calls = w.store.take();
        assert!(
            !calls.iter().any(|c| matches!(c, Call::Range(..))),
            "no catch-up read"
        );
        got.push(f);
    }
    assert_eq!(got[0], got[1], "the same frames");
    assert_eq!(read.frames.get().map(Vec::len), Some(2), "encoded once");
    w.live(&[2151]);
    assert_eq!(seqs(&w.frames(1)), [2151]);
    assert_eq!(seqs(&w.frames(2)), [2151]);
}
