//! Reports for the product's backend, on two nodes: `GET /admin/reports` (every room,
//! oldest first, paged, open or all; an API key only), `POST /admin/reports/:id/resolve`
//! doing the action as the key (audited with the key as actor), and the open reports
//! count of `GET /me/rooms`, shown to the room's owner and admins only.

use crate::admin::{KEY, with_key};
use crate::support::*;
use serde_json::{Value, json};

fn admin(addr: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    request(addr, method, path, Some(KEY), body)
}

fn report(addr: &str, token: &str, room: &str, mid: i64) -> String {
    let (s, r) = request(
        addr,
        "POST",
        &format!("/rooms/{room}/messages/{mid}/report"),
        Some(token),
        Some(&json!({"reason": "abuse"})),
    );
    assert_eq!(s, 201, "{r}");
    r["id"].as_str().unwrap().to_string()
}

fn ids(page: &Value) -> Vec<String> {
    page["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

/// The `reports` field of each of the caller's rooms (`None`: absent).
fn counts(addr: &str, token: &str) -> Vec<(String, Option<i64>)> {
    let (s, page) = request(addr, "GET", "/me/rooms", Some(token), None);
    assert_eq!(s, 200, "{page}");
    page["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_str().unwrap().to_string(), r["reports"].as_i64()))
        .collect()
}

fn count_in(addr: &str, token: &str, room: &str) -> Option<i64> {
    counts(addr, token)
        .into_iter()
        .find(|(id, _)| id == room)
        .expect("the room is listed")
        .1
}

#[test]
fn the_backend_lists_and_resolves_every_rooms_reports() {
    let db = TestDb::new();
    let (na, nb) = (start_with(&db, with_key), start_with(&db, with_key));
    let (a, b) = (na.addr(), nb.addr());
    let owner = register(&a, "own");
    let admin_user = register(&a, "adm");
    let member = register(&b, "mem");
    let spammer = register(&b, "spm");
    let (r1, r2) = (create_room(&a, &owner.token), create_room(&a, &owner.token));
    for u in [&admin_user, &member, &spammer] {
        join_room(&b, &u.token, &r1);
    }
    join_room(&b, &spammer.token, &r2);
    join_room(&b, &member.token, &r2);
    let role = request(
        &a,
        "PUT",
        &format!("/rooms/{r1}/members/{}/role", admin_user.id),
        Some(&owner.token),
        Some(&json!({"role": "admin"})),
    );
    assert_eq!(role.0, 200);
    let mut http = Http::connect(&b);
    let m1 = post_message(&mut http, &spammer.token, &r1, "spam 1")["id"]
        .as_i64()
        .unwrap();
    let m2 = post_message(&mut http, &spammer.token, &r2, "spam 2")["id"]
        .as_i64()
        .unwrap();
    let m3 = post_message(&mut http, &spammer.token, &r1, "spam 3")["id"]
        .as_i64()
        .unwrap();
    let first = report(&b, &member.token, &r1, m1);
    let second = report(&b, &member.token, &r2, m2);
    let third = report(&a, &admin_user.token, &r1, m3);

    // The count of open reports: the owner and admins see it, members do not.
    assert_eq!(count_in(&a, &owner.token, &r1), Some(2));
    assert_eq!(count_in(&a, &owner.token, &r2), Some(1));
    assert_eq!(count_in(&b, &admin_user.token, &r1), Some(2));
    assert_eq!(count_in(&b, &member.token, &r1), None);
    assert_eq!(count_in(&b, &spammer.token, &r2), None);

    // Only an API key lists: a user's token is 403, none is 401.
    assert_eq!(
        request(&a, "GET", "/admin/reports", Some(&owner.token), None).0,
        403
    );
    assert_eq!(request(&a, "GET", "/admin/reports", None, None).0, 401);
    let (s, page) = admin(&a, "GET", "/admin/reports", None);
    assert_eq!(s, 200, "{page}");
    assert_eq!(
        ids(&page),
        vec![first.clone(), second.clone(), third.clone()]
    );
    assert_eq!(page["reports"][1]["room_id"], r2.as_str());
    assert!(page["next_cursor"].is_null());
    // Paged, oldest first.
    let (_, p1) = admin(&b, "GET", "/admin/reports?limit=2", None);
    assert_eq!(ids(&p1), vec![first.clone(), second.clone()]);
    let cursor = p1["next_cursor"].as_str().unwrap().to_string();
    let (_, p2) = admin(
        &b,
        "GET",
        &format!("/admin/reports?limit=2&cursor={cursor}"),
        None,
    );
    assert_eq!(ids(&p2), vec![third.clone()]);
    assert_eq!(admin(&b, "GET", "/admin/reports?status=bad", None).0, 400);
    assert_eq!(admin(&b, "GET", "/admin/reports?cursor=bad", None).0, 400);

    // Resolving with the key: the deletion is done as the key, on any node.
    let (s, done) = admin(
        &b,
        "POST",
        &format!("/admin/reports/{first}/resolve"),
        Some(&json!({"action": "delete_message", "note": "gone"})),
    );
    assert_eq!(s, 200, "{done}");
    assert_eq!(
        (done["status"].as_str(), done["resolution"].as_str()),
        (Some("resolved"), Some("delete_message"))
    );
    assert_eq!(done["content"], "");
    let again = admin(
        &a,
        "POST",
        &format!("/admin/reports/{first}/resolve"),
        Some(&json!({"action": "dismiss"})),
    );
    assert_eq!(
        (again.0, again.1["code"].as_str()),
        (409, Some("already_resolved"))
    );
    let none = admin(
        &a,
        "POST",
        &format!("/admin/reports/{}/resolve", uuid::Uuid::new_v4()),
        Some(&json!({"action": "dismiss"})),
    );
    assert_eq!(
        (none.0, none.1["code"].as_str()),
        (404, Some("report_not_found"))
    );
    let bad = admin(
        &a,
        "POST",
        &format!("/admin/reports/{second}/resolve"),
        Some(&json!({"action": "explode"})),
    );
    assert_eq!(bad.0, 400);
    // A mute as the key: the spammer can no longer post in that room.
    let (s, muted) = admin(
        &a,
        "POST",
        &format!("/admin/reports/{second}/resolve"),
        Some(&json!({"action": "mute"})),
    );
    assert_eq!(s, 200, "{muted}");
    let post = request(
        &b,
        "POST",
        &format!("/rooms/{r2}/messages"),
        Some(&spammer.token),
        Some(&json!({"content": "more"})),
    );
    assert_eq!((post.0, post.1["code"].as_str()), (403, Some("muted")));
    // Open ones only now; all of them with status=all.
    let (_, open) = admin(&a, "GET", "/admin/reports", None);
    assert_eq!(ids(&open), vec![third.clone()]);
    let (_, all) = admin(&a, "GET", "/admin/reports?status=all", None);
    assert_eq!(ids(&all).len(), 3);
    assert_eq!(count_in(&a, &owner.token, &r1), Some(1));
    assert_eq!(count_in(&a, &owner.token, &r2), Some(0));
    // The audit log names the key for the resolutions and their actions.
    let (_, log) = admin(&a, "GET", "/admin/audit", None);
    let by_key: Vec<(String, String)> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"]["kind"] == "api_key")
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["actor"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for want in ["report.resolve", "message.delete", "room.mute"] {
        assert!(
            by_key.iter().any(|(a, n)| a == want && n == "backend"),
            "{want}: {by_key:?}"
        );
    }
    let resolves = by_key.iter().filter(|(a, _)| a == "report.resolve").count();
    assert_eq!(resolves, 2);
}
