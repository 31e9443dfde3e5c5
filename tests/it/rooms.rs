//! Rooms, membership and message history over REST.

use crate::support::*;
use serde_json::json;

#[test]
fn room_lifecycle() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let owner = register(&a, "own");
    let guest = register(&a, "gst");
    assert_eq!(request(&a, "GET", "/rooms", None, None).0, 401);

    let (s, room) = request(
        &a,
        "POST",
        "/rooms",
        Some(&owner.token),
        Some(&json!({"name": "general", "description": "talk"})),
    );
    assert_eq!(s, 201, "{room}");
    assert_eq!(room["created_by"], owner.id.as_str());
    assert_eq!(room["description"], "talk");
    let id = room["id"].as_str().unwrap().to_string();
    let (s, b) = request(
        &a,
        "POST",
        "/rooms",
        Some(&guest.token),
        Some(&json!({"name": "general"})),
    );
    assert_eq!((s, b["code"].as_str()), (409, Some("room_name_taken")));
    let (s, b) = request(
        &a,
        "POST",
        "/rooms",
        Some(&guest.token),
        Some(&json!({"name": ""})),
    );
    assert_eq!((s, b["code"].as_str()), (400, Some("validation_failed")));
    let (s, b) = request(
        &a,
        "POST",
        "/rooms",
        Some(&guest.token),
        Some(&json!({"name": "x".repeat(101)})),
    );
    assert_eq!(s, 400, "{b}");
    let (_, second) = request(
        &a,
        "POST",
        "/rooms",
        Some(&guest.token),
        Some(&json!({"name": "random"})),
    );

    // Newest first.
    let (s, list) = request(&a, "GET", "/rooms", Some(&guest.token), None);
    assert_eq!(s, 200);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["random", "general"]);
    assert_eq!(
        request(&a, "GET", &format!("/rooms/{id}"), Some(&guest.token), None),
        (200, room.clone())
    );
    assert_eq!(
        request(
            &a,
            "GET",
            "/rooms/00000000-0000-7000-8000-000000000000",
            Some(&guest.token),
            None
        )
        .0,
        404
    );
    assert_eq!(
        request(&a, "GET", "/rooms/not-a-uuid", Some(&guest.token), None).0,
        404
    );

    // Non-members can neither read nor post.
    let (s, b) = request(
        &a,
        "GET",
        &format!("/rooms/{id}/messages"),
        Some(&guest.token),
        None,
    );
    assert_eq!((s, b["code"].as_str()), (403, Some("not_member")));
    let (s, _) = request(
        &a,
        "POST",
        &format!("/rooms/{id}/messages"),
        Some(&guest.token),
        Some(&json!({"content": "hi"})),
    );
    assert_eq!(s, 403);
    assert_eq!(
        request(
            &a,
            "GET",
            &format!("/rooms/{id}/members"),
            Some(&guest.token),
            None
        )
        .0,
        403
    );

    // Join is idempotent; a missing room is 404.
    assert_eq!(
        request(
            &a,
            "POST",
            &format!("/rooms/{id}/join"),
            Some(&guest.token),
            None
        ),
        (201, json!({"success": true}))
    );
    assert_eq!(
        request(
            &a,
            "POST",
            &format!("/rooms/{id}/join"),
            Some(&guest.token),
            None
        )
        .0,
        201
    );
    assert_eq!(
        request(
            &a,
            "POST",
            "/rooms/00000000-0000-7000-8000-000000000000/join",
            Some(&guest.token),
            None
        )
        .0,
        404
    );
    let (s, members) = request(
        &a,
        "GET",
        &format!("/rooms/{id}/members"),
        Some(&guest.token),
        None,
    );
    assert_eq!(s, 200);
    assert_eq!(members.as_array().unwrap().len(), 2);
    assert_eq!(members[0]["online"], false);

    let (s, m) = request(
        &a,
        "POST",
        &format!("/rooms/{id}/messages"),
        Some(&guest.token),
        Some(&json!({"content": "hello"})),
    );
    assert_eq!(s, 201, "{m}");
    assert_eq!(
        (
            m["seq"].as_i64(),
            m["content"].as_str(),
            m["username"].as_str()
        ),
        // Seq 1 is the guest's join, recorded as a system entry.
        (Some(2), Some("hello"), Some(guest.username.as_str()))
    );
    assert!(m["id"].is_i64());

    // Leave: reading is refused again.
    assert_eq!(
        request(
            &a,
            "POST",
            &format!("/rooms/{id}/leave"),
            Some(&guest.token),
            None
        ),
        (201, json!({"success": true}))
    );
    assert_eq!(
        request(
            &a,
            "GET",
            &format!("/rooms/{id}/messages"),
            Some(&guest.token),
            None
        )
        .0,
        403
    );
    // The other room's creator is a member of it.
    let other = second["id"].as_str().unwrap();
    assert_eq!(
        request(
            &a,
            "GET",
            &format!("/rooms/{other}/messages"),
            Some(&guest.token),
            None
        )
        .0,
        200
    );
}

#[test]
fn history_pages_with_cursor_and_limit() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let u = register(&a, "hist");
    let room = create_room(&a, &u.token);
    let mut c = Http::connect(&a);
    for i in 1..=25 {
        let r = c.call(
            "POST",
            &format!("/rooms/{room}/messages"),
            Some(&u.token),
            Some(&json!({"content": format!("m{i}")})),
        );
        assert_eq!(r.status, 201);
        assert_eq!(r.json()["seq"], i);
    }
    let (s, p1) = request(
        &a,
        "GET",
        &format!("/rooms/{room}/messages?limit=10"),
        Some(&u.token),
        None,
    );
    assert_eq!(s, 200);
    let seqs: Vec<i64> = p1["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, (16..=25).rev().collect::<Vec<_>>());
    assert_eq!(p1["next_cursor"], 16);
    let (_, p2) = request(
        &a,
        "GET",
        &format!("/rooms/{room}/messages?limit=10&cursor=16"),
        Some(&u.token),
        None,
    );
    assert_eq!(p2["messages"][0]["seq"], 15);
    let (_, p3) = request(
        &a,
        "GET",
        &format!("/rooms/{room}/messages?limit=10&cursor=6"),
        Some(&u.token),
        None,
    );
    assert_eq!(p3["messages"].as_array().unwrap().len(), 5);
    assert_eq!(p3["next_cursor"], serde_json::Value::Null);
    let (_, all) = request(
        &a,
        "GET",
        &format!("/rooms/{room}/messages"),
        Some(&u.token),
        None,
    );
    assert_eq!(all["messages"].as_array().unwrap().len(), 25);
    for bad in ["cursor=abc", "cursor=-1", "limit=0", "limit=101", "limit=x"] {
        let (s, b) = request(
            &a,
            "GET",
            &format!("/rooms/{room}/messages?{bad}"),
            Some(&u.token),
            None,
        );
        assert_eq!(s, 400, "{bad}: {b}");
    }
}

#[test]
fn message_content_limits() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let u = register(&a, "lim");
    let room = create_room(&a, &u.token);
    let path = format!("/rooms/{room}/messages");
    let (s, b) = request(
        &a,
        "POST",
        &path,
        Some(&u.token),
        Some(&json!({"content": ""})),
    );
    assert_eq!(s, 400, "{b}");
    assert_eq!(
        request(&a, "POST", &path, Some(&u.token), Some(&json!({}))).0,
        400
    );
    assert_eq!(
        request(
            &a,
            "POST",
            &path,
            Some(&u.token),
            Some(&json!({"content": 7}))
        )
        .0,
        400
    );
    // 65,536 characters (multi-byte) are fine; one more is too long.
    let (s, m) = request(
        &a,
        "POST",
        &path,
        Some(&u.token),
        Some(&json!({"content": "é".repeat(65536)})),
    );
    assert_eq!(s, 201);
    assert_eq!(m["content"].as_str().unwrap().chars().count(), 65536);
    let (s, b) = request(
        &a,
        "POST",
        &path,
        Some(&u.token),
        Some(&json!({"content": "a".repeat(65537)})),
    );
    assert_eq!((s, b["code"].as_str()), (413, Some("payload_too_large")));
    assert_eq!(
        request(
            &a,
            "POST",
            "/rooms/00000000-0000-7000-8000-000000000000/messages",
            Some(&u.token),
            Some(&json!({"content": "x"}))
        )
        .0,
        404
    );
}
