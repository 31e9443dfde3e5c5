//! Profiles and the user directory: `GET`/`PATCH /me`, `GET /users/:id`,
//! `GET /users?q=`, and display names in member lists and `GET /me/rooms`.

use crate::support::*;
use serde_json::{Value, json};

fn patch_me(a: &str, token: &str, body: Value) -> (u16, Value) {
    request(a, "PATCH", "/me", Some(token), Some(&body))
}

fn search(a: &str, token: &str, q: &str) -> Vec<String> {
    let (status, body) = request(a, "GET", &format!("/users?q={q}"), Some(token), None);
    assert_eq!(status, 200, "{q}: {body}");
    body.as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn profiles_are_read_and_changed_with_checked_fields() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let ann = register(&a, "ann");
    let bob = register(&a, "bob");
    let (status, me) = request(&a, "GET", "/me", Some(&ann.token), None);
    assert_eq!(status, 200);
    assert_eq!(me["id"], ann.id.as_str());
    assert_eq!(me["email"], format!("{}@example.com", ann.username));
    assert_eq!(me["display_name"], Value::Null);

    let (status, me) = patch_me(
        &a,
        &ann.token,
        json!({"display_name": "  Ann Lee ", "avatar_url": "https://cdn.example/ann.png",
               "status_text": "In a meeting", "status_emoji": "📅"}),
    );
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["display_name"], "Ann Lee");
    assert_eq!(me["avatar_url"], "https://cdn.example/ann.png");
    assert_eq!(me["status_text"], "In a meeting");
    assert_eq!(me["status_emoji"], "📅");
    // Absent fields stay; null clears.
    let (_, me) = patch_me(&a, &ann.token, json!({"status_text": null}));
    assert_eq!(me["status_text"], Value::Null);
    assert_eq!(me["display_name"], "Ann Lee");
    assert_eq!(me["status_emoji"], "📅");

    // Others see the profile, never the e-mail address.
    let (status, seen) = request(
        &a,
        "GET",
        &format!("/users/{}", ann.id),
        Some(&bob.token),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(seen["display_name"], "Ann Lee");
    assert!(seen.get("email").is_none(), "{seen}");
    for id in ["00000000-0000-7000-8000-000000000000", "nope"] {
        let (status, body) = request(&a, "GET", &format!("/users/{id}"), Some(&bob.token), None);
        assert_eq!(
            (status, body["code"].as_str()),
            (404, Some("user_not_found"))
        );
    }
    let (status, _) = request(&a, "GET", "/me", None, None);
    assert_eq!(status, 401);

    // Every broken rule is listed, and nothing is changed.
    let (status, body) = patch_me(
        &a,
        &ann.token,
        json!({"display_name": "evil\u{202e}gnp.exe", "avatar_url": "https://u:p@cdn.example/a.png",
               "status_text": "a\nb", "status_emoji": "two 👍👍"}),
    );
    assert_eq!(status, 400);
    assert_eq!(body["code"], "validation_failed");
    assert_eq!(body["message"].as_array().unwrap().len(), 4, "{body}");
    for bad in [
        json!({"display_name": ""}),
        json!({"display_name": "\u{200b}\u{200d}"}),
        json!({"display_name": "x".repeat(65)}),
        json!({"display_name": 7}),
        json!({"avatar_url": "javascript:alert(1)"}),
        json!({"avatar_url": format!("https://cdn.example/{}", "a".repeat(2048))}),
        json!({"status_text": "s".repeat(141)}),
        json!({"status_emoji": "smile"}),
    ] {
        let (status, body) = patch_me(&a, &ann.token, bad.clone());
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (_, me) = request(&a, "GET", "/me", Some(&ann.token), None);
    assert_eq!(me["display_name"], "Ann Lee");

    // Display names travel with members and direct rooms (added fields only).
    let room = create_room(&a, &ann.token);
    join_room(&a, &bob.token, &room);
    let (_, members) = request(
        &a,
        "GET",
        &format!("/rooms/{room}/members"),
        Some(&bob.token),
        None,
    );
    assert_eq!(members[0]["display_name"], "Ann Lee");
    assert_eq!(members[1]["display_name"], Value::Null);
    assert_eq!(members[0]["username"], ann.username.as_str());
    let (status, dm) = request(
        &a,
        "POST",
        "/dm",
        Some(&bob.token),
        Some(&json!({"user_id": ann.id})),
    );
    assert_eq!(status, 201, "{dm}");
    assert_eq!(dm["other_user"]["display_name"], "Ann Lee");
    let (_, mine) = request(&a, "GET", "/me/rooms", Some(&bob.token), None);
    let direct = mine["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["visibility"] == "direct")
        .unwrap();
    assert_eq!(direct["other_user"]["display_name"], "Ann Lee");
    assert_eq!(direct["other_user"]["username"], ann.username.as_str());
}

#[test]
fn the_directory_finds_prefixes_whatever_the_case_and_accents() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let mut names = Vec::new();
    for (name, display) in [
        ("Zoë_k", None),
        ("zoltan", Some("Zed Zoltan")),
        ("ÉMILE", None),
        ("emily", Some("Émilie Dupont")),
        ("marc", Some("Zoé Marc")),
        ("bernard", None),
    ] {
        let (status, body) = request(
            &a,
            "POST",
            "/auth/register",
            None,
            Some(
                &json!({"username": name, "email": format!("{}@example.com", names.len()), "password": "password123"}),
            ),
        );
        assert_eq!(status, 201, "{body}");
        let token = body["tokens"]["accessToken"].as_str().unwrap().to_string();
        if let Some(d) = display {
            assert_eq!(patch_me(&a, &token, json!({"display_name": d})).0, 200);
        }
        names.push(token);
    }
    let t = &names[0];
    // Username or display-name prefix, folded; the matched name (folded: "zoe marc" before
    // "zoe_k") orders the results.
    assert_eq!(search(&a, t, "zo"), vec!["marc", "Zoë_k", "zoltan"]);
    assert_eq!(search(&a, t, "ZOE"), vec!["marc", "Zoë_k"]);
    assert_eq!(search(&a, t, "zoë"), vec!["marc", "Zoë_k"]);
    assert_eq!(search(&a, t, "emil"), vec!["ÉMILE", "emily"]);
    assert_eq!(
        search(&a, t, "%C3%A9mili"),
        vec!["emily"],
        "é, percent-encoded"
    );
    assert_eq!(search(&a, t, "ze"), vec!["zoltan"]);
    assert!(search(&a, t, "zz").is_empty());
    assert!(
        search(&a, t, "%25").is_empty(),
        "LIKE wildcards are plain characters"
    );
    assert!(search(&a, t, "_").is_empty());
    // A user matched by both names appears once, at its first name in order.
    assert_eq!(search(&a, t, "z"), vec!["zoltan", "marc", "Zoë_k"]);
    let (_, body) = request(&a, "GET", "/users?q=z&limit=2", Some(t), None);
    assert_eq!(body.as_array().unwrap().len(), 2);
    for bad in [
        "/users",
        "/users?q=",
        "/users?q=%20%20",
        "/users?q=a&limit=0",
        "/users?q=a&limit=51",
    ] {
        let (status, body) = request(&a, "GET", bad, Some(t), None);
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("validation_failed")),
            "{bad}"
        );
    }
    let (status, _) = request(&a, "GET", "/users?q=zo", None, None);
    assert_eq!(status, 401);
    let (status, body) = request(
        &a,
        "GET",
        &format!("/users?q={}", "a".repeat(51)),
        Some(t),
        None,
    );
    assert_eq!(status, 400, "{body}");

    // Accounts from before the directory are folded by the next start.
    let mut pg = db.client();
    pg.execute(
        "INSERT INTO users (id, username, username_key, email, password_hash)
         VALUES ('00000000-0000-7000-8000-0000000000aa', 'Ólafur', 'ólafur', 'o@example.com', 'x')",
        &[],
    )
    .unwrap();
    drop(node);
    let node = start(&db);
    assert_eq!(search(&node.addr(), t, "olaf"), vec!["Ólafur"]);
}

/// `user_updated` (PROTOCOL.md 12.3) on two nodes of one database: ann's `PATCH /me` on
/// node 1 reaches bob's socket on node 2 (bob is a member of ann's room; his socket did
/// not join it) with the profile `GET /users/:id` shows, and ann's own socket; carol,
/// who shares a room with bob but none with ann, gets nothing. Five changes in quick
/// succession (on both nodes) give bob at most 2 events in the first 1.2 s, a second
/// apart at least, the last with the final name; a change that changes nothing sends
/// nothing.
///
/// Fails when the change does not cross nodes or is sent only to sockets that joined
/// the room (bob's `expect_next` times out), when it goes to every socket (carol's), when
/// changes are not coalesced (more than 2 events, or closer than a second), when the
/// change waiting for the second to end is dropped (the last name is not `Ann 5`), or
/// when an unchanged profile is announced.
#[test]
fn profile_changes_reach_room_mates_on_every_node_once_a_second() {
    use std::time::{Duration, Instant};
    let _alone = alone();
    let db = TestDb::new();
    let nodes = [start(&db), start(&db)];
    let (a, b) = (nodes[0].addr(), nodes[1].addr());
    let (ann, bob, carol) = (
        register(&a, "uann"),
        register(&a, "ubob"),
        register(&a, "ucarol"),
    );
    let room = create_room(&a, &ann.token);
    join_room(&a, &bob.token, &room);
    let other = create_room(&a, &carol.token);
    join_room(&a, &bob.token, &other);
    let mut bobs = Ws::connect(&b, &bob.token);
    let mut carols = Ws::connect(&b, &carol.token);
    let mut anns = Ws::connect(&a, &ann.token);
    let updates = |w: &mut Ws, quiet: Duration| -> Vec<Value> {
        w.drain(quiet)
            .into_iter()
            .filter(|v| v["event"] == "user_updated")
            .map(|v| v["data"]["user"].clone())
            .collect()
    };

    let (status, _) = patch_me(&a, &ann.token, json!({"display_name": "Ann One"}));
    assert_eq!(status, 200);
    let seen = bobs.expect_next("user_updated");
    let (status, shown) = request(
        &b,
        "GET",
        &format!("/users/{}", ann.id),
        Some(&bob.token),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(
        seen["user"], shown,
        "the profile as GET /users/:id shows it"
    );
    assert_eq!(seen["user"]["display_name"], "Ann One");
    assert_eq!(
        anns.expect_next("user_updated")["user"]["id"],
        ann.id.as_str()
    );

    // A second after the last event: the next change would go out at once.
    std::thread::sleep(Duration::from_millis(1100));
    let t0 = Instant::now();
    for i in 1..=5 {
        let node = if i % 2 == 0 { &b } else { &a };
        let (status, _) = patch_me(
            node,
            &ann.token,
            json!({"display_name": format!("Ann {i}")}),
        );
        assert_eq!(status, 200);
    }
    let mut events = Vec::new();
    while let Some(v) = bobs.next_within(Duration::from_secs(3)) {
        assert_eq!(v["event"], "user_updated", "{v}");
        events.push((t0.elapsed(), v["data"]["user"]["display_name"].clone()));
    }
    let early = events
        .iter()
        .filter(|(t, _)| *t <= Duration::from_millis(1200))
        .count();
    assert!(!events.is_empty() && early <= 2, "{events:?}");
    for pair in events.windows(2) {
        assert!(
            pair[1].0 - pair[0].0 >= Duration::from_millis(900),
            "{events:?}"
        );
    }
    assert_eq!(events.last().unwrap().1, "Ann 5", "{events:?}");

    // Nothing changes: nothing is sent.
    let (status, _) = patch_me(&b, &ann.token, json!({"display_name": "Ann 5"}));
    assert_eq!(status, 200);
    bobs.assert_silent(Duration::from_millis(1500), "an unchanged profile");
    assert!(
        updates(&mut carols, Duration::from_millis(300)).is_empty(),
        "carol shares no room with ann"
    );
}
