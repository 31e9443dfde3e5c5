//! Reports on two nodes: members report a message once, the owner and admins list and
//! resolve them, and a resolution acts through the direct route's use case.

use crate::support::*;
use serde_json::{Value, json};

fn call(addr: &str, method: &str, path: &str, token: &str, body: Option<&Value>) -> (u16, Value) {
    request(addr, method, path, Some(token), body)
}

fn code(r: &(u16, Value)) -> (u16, String) {
    (r.0, r.1["code"].as_str().unwrap_or("").to_string())
}

#[test]
fn members_report_once_and_admins_resolve_through_the_direct_use_cases() {
    let db = TestDb::new();
    let (na, nb) = (start(&db), start(&db));
    let (a, b) = (na.addr(), nb.addr());
    let owner = register(&a, "own");
    let (admin, member, spammer, outsider) = (
        register(&b, "adm"),
        register(&b, "mem"),
        register(&b, "spm"),
        register(&b, "out"),
    );
    let room = create_room(&a, &owner.token);
    for u in [&admin, &member, &spammer] {
        join_room(&b, &u.token, &room);
    }
    let r = call(
        &a,
        "PUT",
        &format!("/rooms/{room}/members/{}/role", admin.id),
        &owner.token,
        Some(&json!({"role": "admin"})),
    );
    assert_eq!(r.0, 200, "{}", r.1);
    let mut c = Http::connect(&b);
    let spam = post_message(&mut c, &spammer.token, &room, "buy now")["id"]
        .as_i64()
        .unwrap();
    let rude = post_message(&mut c, &spammer.token, &room, "rude")["id"]
        .as_i64()
        .unwrap();
    let report = |m: i64| format!("/rooms/{room}/messages/{m}/report");
    let spam_body = json!({"reason": "spam", "note": "ads"});
    // Bad input and outsiders: refused, nothing stored.
    for (body, want) in [
        (json!({"reason": "boring"}), (400, "validation_failed")),
        (json!({}), (400, "validation_failed")),
        (
            json!({"reason": "other", "note": "x".repeat(1001)}),
            (400, "validation_failed"),
        ),
    ] {
        let r = call(&b, "POST", &report(spam), &member.token, Some(&body));
        assert_eq!(code(&r), (want.0, want.1.to_string()), "{body}");
    }
    let r = call(&b, "POST", &report(spam), &outsider.token, Some(&spam_body));
    assert_eq!(code(&r), (403, "not_member".into()));
    let r = call(
        &b,
        "POST",
        &report(999_999),
        &member.token,
        Some(&spam_body),
    );
    assert_eq!(code(&r), (404, "message_not_found".into()));
    // Once per message and user.
    let r = call(&b, "POST", &report(spam), &member.token, Some(&spam_body));
    assert_eq!(r.0, 201, "{}", r.1);
    let spam_report = r.1["id"].as_str().unwrap().to_string();
    let r = call(&a, "POST", &report(spam), &member.token, Some(&spam_body));
    assert_eq!(code(&r), (409, "already_reported".into()));
    let r = call(
        &a,
        "POST",
        &report(rude),
        &member.token,
        Some(&json!({"reason": "abuse"})),
    );
    assert_eq!(r.0, 201, "{}", r.1);
    let rude_report = r.1["id"].as_str().unwrap().to_string();
    // Listing: owner and admins only.
    let list = format!("/rooms/{room}/reports");
    for u in [&member, &spammer] {
        assert_eq!(
            code(&call(&a, "GET", &list, &u.token, None)),
            (403, "forbidden".into())
        );
    }
    assert_eq!(
        code(&call(&a, "GET", &list, &outsider.token, None)),
        (403, "not_member".into())
    );
    let (s, body) = call(
        &a,
        "GET",
        &format!("{list}?status=open"),
        &admin.token,
        None,
    );
    assert_eq!(s, 200, "{body}");
    let open: Vec<&str> = body["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(open, vec![spam_report.as_str(), rude_report.as_str()]);
    assert_eq!(body["reports"][0]["reason"], "spam");
    assert_eq!(body["reports"][0]["content"], "buy now");
    assert_eq!(body["reports"][0]["reporter"], member.id.as_str());
    let r = call(
        &a,
        "GET",
        &format!("{list}?status=shut"),
        &admin.token,
        None,
    );
    assert_eq!(code(&r), (400, "validation_failed".into()));
    // Resolving: a member cannot; a bad action is refused; delete_message deletes.
    let resolve = |id: &str| format!("/rooms/{room}/reports/{id}/resolve");
    let del = json!({"action": "delete_message"});
    let r = call(
        &b,
        "POST",
        &resolve(&spam_report),
        &member.token,
        Some(&del),
    );
    assert_eq!(code(&r), (403, "forbidden".into()));
    let r = call(
        &b,
        "POST",
        &resolve(&spam_report),
        &admin.token,
        Some(&json!({"action": "shame"})),
    );
    assert_eq!(code(&r), (400, "validation_failed".into()));
    let r = call(&b, "POST", &resolve(&spam_report), &admin.token, Some(&del));
    assert_eq!(
        (r.0, r.1["status"].as_str()),
        (200, Some("resolved")),
        "{}",
        r.1
    );
    assert_eq!(r.1["resolution"], "delete_message");
    let (_, page) = call(
        &a,
        "GET",
        &format!("/rooms/{room}/messages?limit=5"),
        &owner.token,
        None,
    );
    let gone = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == spam)
        .unwrap()
        .clone();
    assert!(gone["deleted_at"].is_string(), "{gone}");
    let r = call(
        &a,
        "POST",
        &resolve(&spam_report),
        &owner.token,
        Some(&json!({"action": "dismiss"})),
    );
    assert_eq!(code(&r), (409, "already_resolved".into()));
    let r = call(
        &a,
        "POST",
        &resolve("not-a-uuid"),
        &owner.token,
        Some(&json!({"action": "dismiss"})),
    );
    assert_eq!(code(&r), (404, "report_not_found".into()));
    // Ban: through the sanction's use case; the spammer's socket on the other node is
    // removed from the room.
    let mut ws = Ws::connect(&b, &spammer.token);
    ws.join(&room, None);
    let r = call(
        &a,
        "POST",
        &resolve(&rude_report),
        &owner.token,
        Some(&json!({"action": "ban", "note": "repeat"})),
    );
    assert_eq!(
        (r.0, r.1["resolution"].as_str()),
        (200, Some("ban")),
        "{}",
        r.1
    );
    let frames = ws.drain(std::time::Duration::from_millis(800));
    assert!(
        frames
            .iter()
            .any(|f| f["event"] == "membership" || f["event"] == "left_room"),
        "the banned socket was not told: {frames:?}"
    );
    let r = call(
        &b,
        "POST",
        &format!("/rooms/{room}/join"),
        &spammer.token,
        None,
    );
    assert_eq!(code(&r), (403, "banned".into()));
    let (_, body) = call(&a, "GET", &list, &owner.token, None);
    assert!(body["reports"].as_array().unwrap().is_empty(), "{body}");
    let (_, body) = call(&a, "GET", &format!("{list}?status=all"), &owner.token, None);
    assert_eq!(body["reports"].as_array().unwrap().len(), 2, "{body}");
    // Every resolution is in the audit log, by whom and how (the admin deleted, the owner
    // banned); the ban has its own row too.
    let rows: Vec<(String, String, String)> = db
        .client()
        .query(
            "SELECT actor_name, action, coalesce(data->>'resolution', '') FROM audit_log
             WHERE room_id = $1 AND action IN ('report.resolve', 'room.ban') ORDER BY id",
            &[&room.parse::<uuid::Uuid>().unwrap()],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let who = owner.username.clone();
    assert_eq!(
        rows,
        vec![
            (
                admin.username.clone(),
                "report.resolve".into(),
                "delete_message".into()
            ),
            (who.clone(), "room.ban".into(), String::new()),
            (who, "report.resolve".into(), "ban".into()),
        ]
    );
}
