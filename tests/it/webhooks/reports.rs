//! `report.created`: written with the report, sent signed to the real receiver with the
//! report as owners list it; nothing for a refused report.

use super::receiver::{Fault, Receiver};
use super::{endpoint, wait_for};
use crate::support::*;
use serde_json::json;
use std::time::Duration;

#[test]
fn a_report_is_a_report_created_event_and_a_refused_one_is_none() {
    let r = Receiver::start(|_, _| Fault::None);
    let db = TestDb::new();
    let node = start_with(&db, |c| c.webhooks = vec![endpoint("test", &r)]);
    let addr = node.addr();
    let owner = register(&addr, "own");
    let member = register(&addr, "mem");
    let room = create_room(&addr, &owner.token);
    join_room(&addr, &member.token, &room);
    let mut http = Http::connect(&addr);
    let mid = post_message(&mut http, &owner.token, &room, "reported")["id"]
        .as_i64()
        .unwrap();
    let path = format!("/rooms/{room}/messages/{mid}/report");
    let body = json!({"reason": "spam", "note": "ads"});
    let (s, rep) = request(&addr, "POST", &path, Some(&member.token), Some(&body));
    assert_eq!(s, 201, "{rep}");
    // Refused (twice the same, a bad reason): no event.
    let (s, _) = request(&addr, "POST", &path, Some(&member.token), Some(&body));
    assert_eq!(s, 409);
    let bad = json!({"reason": "nope"});
    assert_eq!(
        request(&addr, "POST", &path, Some(&owner.token), Some(&bad)).0,
        400
    );
    let reports = || {
        r.delivered()
            .into_iter()
            .filter(|g| g.ok && g.json["type"] == "report.created")
            .collect::<Vec<_>>()
    };
    wait_for(10, "report.created", || !reports().is_empty());
    std::thread::sleep(Duration::from_millis(500));
    let got = reports();
    assert_eq!(got.len(), 1, "{:?}", got);
    let e = &got[0].json;
    assert_eq!(e["room_id"], room.as_str());
    assert!(e.get("seq").is_none());
    assert!(e["id"].as_str().unwrap().starts_with("evt_"));
    let d = &e["data"];
    assert_eq!(d["id"], rep["id"]);
    assert_eq!(d["room_id"], room.as_str());
    assert_eq!(d["message_id"], mid);
    assert_eq!(d["author_id"], owner.id.as_str());
    assert_eq!(d["reporter"], member.id.as_str());
    assert_eq!(
        (d["reason"].as_str(), d["note"].as_str()),
        (Some("spam"), Some("ads"))
    );
    assert_eq!(
        (d["status"].as_str(), d["content"].as_str()),
        (Some("open"), Some("reported"))
    );
    assert_eq!(r.bad.load(std::sync::atomic::Ordering::Relaxed), 0);
}
