//! The node's upload budget (`files.upload_bytes_per_sec`, a bucket of
//! `files.max_bytes`): a lone upload goes at full speed, concurrent ones share the rate.

use crate::files::{pattern, uploaded};
use crate::support::*;
use std::time::{Duration, Instant};

/// With a bucket of 1 MiB refilled at 1 MiB/s, a lone 1 MiB upload takes the burst at
/// once; two more concurrent uploads of 1 MiB right after (through the same node) must
/// then wait for 2 MiB of refill: at least about 2 s together, and both are stored
/// whole. Fails if the budget is not taken, not shared by the node's uploads, or if it
/// holds back an upload within the burst.
#[test]
fn concurrent_uploads_share_the_node_budget() {
    let _alone = alone();
    let db = TestDb::new();
    let node = start_with(&db, |c| {
        c.files.max_bytes = 1 << 20;
        c.files.upload_bytes_per_sec = 1 << 20;
    });
    let a = node.addr();
    let alice = register(&a, "budget");
    let room = create_room(&a, &alice.token);
    let bytes = pattern(1 << 20);
    let t = Instant::now();
    uploaded(&a, &alice.token, &room, "lone.bin", &bytes);
    let lone = t.elapsed();
    assert!(lone < Duration::from_millis(900), "the burst: {lone:?}");
    let t = Instant::now();
    std::thread::scope(|s| {
        for name in ["one.bin", "two.bin"] {
            let (a, token, room, bytes) = (&a, &alice.token, &room, &bytes);
            s.spawn(move || uploaded(a, token, room, name, bytes));
        }
    });
    let both = t.elapsed();
    assert!(
        both >= Duration::from_millis(1800),
        "2 MiB at 1 MiB/s took {both:?}"
    );
    let n: i64 = db
        .client()
        .query_one(
            "SELECT count(*) FROM files WHERE size = $1",
            &[&(1i64 << 20)],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 3);
}
