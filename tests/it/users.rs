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
