//! File uploads stored in PostgreSQL: uploaded on one node and served byte for byte by
//! another, the size limit answered from the head, who may upload and download, ranges
//! and revalidation, the headers that keep a file from acting as a page, attachment to
//! messages (once, by the uploader, in its room) and the bytes leaving with the message.

use crate::support::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::io::{BufRead, Read};
use std::time::Duration;

/// A PNG header of 3 x 2 pixels, then filler.
fn png() -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x03\0\0\0\x02".to_vec();
    b.extend(std::iter::repeat_n(7u8, 100));
    b
}

/// Bytes that differ along their length (a misplaced chunk shows), `n` of them.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

pub fn hex_sha256(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// `POST /rooms/:room/files?name=` with `bytes` as the body.
pub fn upload(addr: &str, token: &str, room: &str, name: &str, bytes: &[u8]) -> Resp {
    let mut c = Http::connect(addr);
    let head = format!(
        "POST /rooms/{room}/files?name={name} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        bytes.len()
    );
    c.send_raw(head.as_bytes());
    c.send_raw(bytes);
    c.read().expect("an answer")
}

/// An upload that must succeed: the file.
pub fn uploaded(addr: &str, token: &str, room: &str, name: &str, bytes: &[u8]) -> Value {
    let r = upload(addr, token, room, name, bytes);
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// `GET /files/:id` with extra header lines: the head and the whole body (chunked or
/// sized).
pub fn download(addr: &str, token: &str, id: &str, extra: &str) -> (Resp, Vec<u8>) {
    let mut c = Http::connect(addr);
    c.send_raw(
        format!(
            "GET /files/{id} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n{extra}\
             Connection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    let chunked = |r: &Resp| r.header("transfer-encoding") == Some("chunked");
    let head = read_response(&mut c.r, true).expect("a head");
    if !chunked(&head) {
        let len: usize = head
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        c.r.read_exact(&mut body).unwrap();
        return (head, body);
    }
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        c.r.read_line(&mut size).unwrap();
        let n = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
        let mut data = vec![0; n + 2];
        c.r.read_exact(&mut data).unwrap();
        if n == 0 {
            return (head, body);
        }
        body.extend_from_slice(&data[..n]);
    }
}

fn call(addr: &str, method: &str, path: &str, token: &str, body: Option<&Value>) -> (u16, Value) {
    request(addr, method, path, Some(token), body)
}

/// A file of 700 KiB (three chunks of storage) uploaded through node 1 comes back from
/// node 2 byte for byte, with its SHA-256 as the ETag, and `If-None-Match` with it is
/// 304. Fails if chunks are stored out of order or cut (the pattern shifts), if a node
/// serves only what it stored itself, or if the sum or the ETag is not the bytes'.
#[test]
fn uploaded_on_one_node_served_identical_by_another() {
    let db = TestDb::new();
    let (n1, n2) = (start(&db), start(&db));
    let (a, b) = (n1.addr(), n2.addr());
    let alice = register(&a, "up");
    let room = create_room(&a, &alice.token);
    let bytes = pattern(700 * 1024 + 5);
    let f = uploaded(&a, &alice.token, &room, "data.bin", &bytes);
    assert_eq!(f["size"], bytes.len());
    assert_eq!(f["sha256"], hex_sha256(&bytes));
    assert_eq!(
        f["mime"], "application/octet-stream",
        "never the client's type"
    );
    assert_eq!(f["name"], "data.bin");
    assert_eq!(f["room_id"], room.as_str());
    assert_eq!(f["has_thumbnail"], false);
    let id = f["id"].as_str().unwrap();
    let (head, body) = download(&b, &alice.token, id, "");
    assert_eq!(head.status, 200);
    assert_eq!(body.len(), bytes.len());
    assert!(body == bytes, "the bytes differ");
    assert_eq!(hex_sha256(&body), f["sha256"].as_str().unwrap());
    let etag = head.header("etag").unwrap().to_string();
    assert_eq!(etag, format!("\"{}\"", hex_sha256(&bytes)));
    assert_eq!(head.header("cache-control"), Some("private"));
    let (again, body) = download(&b, &alice.token, id, &format!("If-None-Match: {etag}\r\n"));
    assert_eq!((again.status, body.len()), (304, 0));
    let stored: i64 = db
        .client()
        .query_one("SELECT count(*) FROM file_chunks", &[])
        .unwrap()
        .get(0);
    assert_eq!(stored, 3, "chunks of 256 KiB");
}

/// A `Content-Length` over `files.max_bytes` is answered 413 from the head alone: the
/// body is never sent here, so a server that waited for it would time the test out.
/// Also the JSON routes keep their own smaller limit. Fails if the limit is not read
/// from `[files]` or is checked only after the body arrived.
#[test]
fn over_the_limit_is_413_before_the_body() {
    let db = TestDb::new();
    let node = start_with(&db, |c| c.files.max_bytes = 4096);
    let a = node.addr();
    let alice = register(&a, "big");
    let room = create_room(&a, &alice.token);
    let mut c = Http::connect(&a);
    c.r.get_ref()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    c.send_raw(
        format!(
            "POST /rooms/{room}/files?name=x HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\n\
             Content-Length: 4097\r\n\r\n",
            alice.token
        )
        .as_bytes(),
    );
    let r = c.read().expect("an answer without the body");
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["code"], "payload_too_large");
    // At the limit it is stored.
    let f = uploaded(&a, &alice.token, &room, "x", &pattern(4096));
    assert_eq!(f["size"], 4096);
}

/// Who may upload and download: an outsider of a public room is `not_member` both ways,
/// of a private room `file_not_found` (the room is not shown); a muted member may not
/// upload; a kicked member may no longer download. Fails if a rule is skipped or if
/// downloading does not ask the room's current membership.
#[test]
fn only_members_upload_and_download() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let (alice, bob, carol) = (
        register(&a, "own"),
        register(&a, "mem"),
        register(&a, "out"),
    );
    let room = create_room(&a, &alice.token);
    join_room(&a, &bob.token, &room);
    let f = uploaded(&a, &bob.token, &room, "p.png", &png());
    let id = f["id"].as_str().unwrap();
    let r = upload(&a, &carol.token, &room, "x", b"hello");
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (403, json!("not_member"))
    );
    let (r, _) = download(&a, &carol.token, id, "");
    assert_eq!(r.status, 403);
    let (s, body) = call(
        &a,
        "POST",
        "/rooms",
        &alice.token,
        Some(&json!({"name": format!("priv-{}", &id[..8]), "visibility": "private"})),
    );
    assert_eq!(s, 201, "{body}");
    let private = body["id"].as_str().unwrap().to_string();
    let pf = uploaded(&a, &alice.token, &private, "s.txt", b"secret");
    let (r, body) = download(&a, &carol.token, pf["id"].as_str().unwrap(), "");
    assert_eq!(r.status, 404, "{}", String::from_utf8_lossy(&body));
    let r = upload(&a, &carol.token, &private, "x", b"hello");
    assert_eq!(r.status, 404);
    // Muted: reads, may not upload.
    let (s, body) = call(
        &a,
        "POST",
        &format!("/rooms/{room}/members/{}/mute", bob.id),
        &alice.token,
        None,
    );
    assert_eq!(s, 200, "{body}");
    let r = upload(&a, &bob.token, &room, "x", b"hello");
    assert_eq!((r.status, r.json()["code"].clone()), (403, json!("muted")));
    assert_eq!(download(&a, &bob.token, id, "").0.status, 200);
    // Kicked: no longer reads.
    let (s, body) = call(
        &a,
        "POST",
        &format!("/rooms/{room}/members/{}/kick", bob.id),
        &alice.token,
        None,
    );
    assert_eq!(s, 200, "{body}");
    assert_eq!(download(&a, &bob.token, id, "").0.status, 403);
    assert_eq!(download(&a, &alice.token, id, "").0.status, 200);
    let (r, _) = download(&a, &alice.token, "00000000-0000-0000-0000-000000000000", "");
    assert_eq!(r.status, 404);
}

/// `Range: bytes=a-b` is 206 with exactly those bytes (across a chunk boundary of
/// storage), `Content-Range` saying so; a range past the end is 416. Fails if the
/// offsets within a chunk or the last chunk are computed wrong.
#[test]
fn a_range_is_206_with_its_bytes() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let alice = register(&a, "rng");
    let room = create_room(&a, &alice.token);
    let bytes = pattern(300 * 1024);
    let f = uploaded(&a, &alice.token, &room, "r.bin", &bytes);
    let id = f["id"].as_str().unwrap();
    let (from, to) = (262_000usize, 262_300usize);
    let (head, body) = download(
        &a,
        &alice.token,
        id,
        &format!("Range: bytes={from}-{to}\r\n"),
    );
    assert_eq!(head.status, 206);
    assert_eq!(
        head.header("content-range"),
        Some(format!("bytes {from}-{to}/{}", bytes.len()).as_str())
    );
    assert!(body == bytes[from..=to], "wrong bytes");
    let (head, body) = download(&a, &alice.token, id, "Range: bytes=-10\r\n");
    assert_eq!(head.status, 206);
    assert!(body == bytes[bytes.len() - 10..]);
    let (head, _) = download(&a, &alice.token, id, "Range: bytes=999999-\r\n");
    assert_eq!(head.status, 416);
}

/// An HTML file (sent as `text/html`) is stored as octets and served as an attachment
/// with `nosniff` and a sandboxing CSP; a PNG is served inline as `image/png` with its
/// size. Fails if the client's type is trusted or if anything but images is inline.
#[test]
fn html_and_svg_are_attachments_and_png_inline() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let alice = register(&a, "hdr");
    let room = create_room(&a, &alice.token);
    let html = b"<html><script>alert(document.cookie)</script></html>";
    let f = uploaded(&a, &alice.token, &room, "..%2Fevil%E2%80%AE.html", html);
    assert_eq!(f["mime"], "application/octet-stream");
    assert_eq!(f["name"], "evil.html", "path and bidi override removed");
    let (head, body) = download(&a, &alice.token, f["id"].as_str().unwrap(), "");
    assert_eq!(body, html);
    assert_eq!(
        head.header("content-type"),
        Some("application/octet-stream")
    );
    assert!(
        head.header("content-disposition")
            .unwrap()
            .starts_with("attachment;")
    );
    assert_eq!(head.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        head.header("content-security-policy"),
        Some("sandbox; default-src 'none'")
    );
    // An SVG is a document that runs script when opened in place: never an image here.
    let svg = br#"<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>"#;
    let s = uploaded(&a, &alice.token, &room, "logo.svg", svg);
    assert_eq!(
        (s["mime"].as_str(), s["has_thumbnail"].as_bool()),
        (Some("application/octet-stream"), Some(false))
    );
    let (head, body) = download(&a, &alice.token, s["id"].as_str().unwrap(), "");
    assert_eq!(body, svg);
    assert_eq!(
        head.header("content-type"),
        Some("application/octet-stream")
    );
    assert!(
        head.header("content-disposition")
            .unwrap()
            .starts_with("attachment;")
    );
    assert_eq!(
        head.header("content-security-policy"),
        Some("sandbox; default-src 'none'")
    );
    let p = uploaded(&a, &alice.token, &room, "pic.png", &png());
    assert_eq!(
        (p["mime"].clone(), p["width"].clone(), p["height"].clone()),
        (json!("image/png"), json!(3), json!(2))
    );
    let (head, body) = download(&a, &alice.token, p["id"].as_str().unwrap(), "");
    assert_eq!(body, png());
    assert_eq!(head.header("content-type"), Some("image/png"));
    assert_eq!(
        head.header("content-disposition"),
        Some("inline; filename=\"pic.png\"; filename*=UTF-8''pic.png")
    );
    assert_eq!(head.header("x-content-type-options"), Some("nosniff"));
}

/// A message attaching a file carries the file in its answer, in history and on the
/// sockets of the other node; deleting the message deletes the file and every chunk
/// row (counted in the database). Fails if the writer does not complete the attachment,
/// or if a deletion leaves the bytes behind.
#[test]
fn attached_files_travel_with_the_message_and_leave_with_it() {
    let db = TestDb::new();
    let (n1, n2) = (start(&db), start(&db));
    let (a, b) = (n1.addr(), n2.addr());
    let (alice, bob) = (register(&a, "att"), register(&b, "rd"));
    let room = create_room(&a, &alice.token);
    join_room(&b, &bob.token, &room);
    let mut ws = Ws::connect(&b, &bob.token);
    ws.join(&room, None);
    let f = uploaded(&a, &alice.token, &room, "doc.pdf", b"%PDF-1.7 a document");
    assert_eq!(f["mime"], "application/pdf");
    let id = f["id"].as_str().unwrap();
    let (s, m) = call(
        &a,
        "POST",
        &format!("/rooms/{room}/messages"),
        &alice.token,
        Some(&json!({"content": "see attached", "attachments": [{"file_id": id}]})),
    );
    assert_eq!(s, 201, "{m}");
    assert_eq!(m["attachments"][0]["file_id"], id);
    assert_eq!(m["attachments"][0]["file"], f);
    let live = ws.expect_where("new_message", |v| v["content"] == "see attached");
    assert_eq!(live["attachments"][0]["file"]["sha256"], f["sha256"]);
    let (s, page) = call(
        &b,
        "GET",
        &format!("/rooms/{room}/messages"),
        &bob.token,
        None,
    );
    assert_eq!(s, 200);
    let found = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == m["id"])
        .cloned()
        .unwrap();
    assert_eq!(found["attachments"][0]["file"]["name"], "doc.pdf");
    let count = |sql: &str| -> i64 { db.client().query_one(sql, &[]).unwrap().get(0) };
    assert_eq!(count("SELECT count(*) FROM file_chunks"), 1);
    let (s, body) = call(
        &a,
        "DELETE",
        &format!("/rooms/{room}/messages/{}", m["id"]),
        &alice.token,
        None,
    );
    assert_eq!(s, 200, "{body}");
    assert_eq!(count("SELECT count(*) FROM file_chunks"), 0);
    assert_eq!(count("SELECT count(*) FROM files"), 0);
    assert_eq!(download(&b, &bob.token, id, "").0.status, 404);
}

/// A file is attachable once, by its uploader, in its own room: another member's
/// attempt is `file_not_found`, as is the uploader's in another room; a second
/// attachment is `file_already_attached`; nothing is stored for a refused message.
/// Fails if the writer skips any of the three checks.
#[test]
fn only_the_uploader_attaches_once_in_the_room() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let (alice, bob) = (register(&a, "upl"), register(&a, "oth"));
    let room = create_room(&a, &alice.token);
    let other = create_room(&a, &alice.token);
    join_room(&a, &bob.token, &room);
    let f = uploaded(&a, &alice.token, &room, "a.png", &png());
    let send = |token: &str, room: &str| {
        call(
            &a,
            "POST",
            &format!("/rooms/{room}/messages"),
            token,
            Some(&json!({"content": "x", "attachments": [{"file_id": f["id"]}]})),
        )
    };
    let head = room_head(&a, &alice.token, &room);
    let (s, body) = send(&bob.token, &room);
    assert_eq!((s, body["code"].clone()), (404, json!("file_not_found")));
    let (s, body) = send(&alice.token, &other);
    assert_eq!((s, body["code"].clone()), (404, json!("file_not_found")));
    assert_eq!(room_head(&a, &alice.token, &room), head, "nothing stored");
    let (s, body) = send(&alice.token, &room);
    assert_eq!(s, 201, "{body}");
    let (s, body) = send(&alice.token, &room);
    assert_eq!(
        (s, body["code"].clone()),
        (409, json!("file_already_attached"))
    );
}

/// Uploads are streamed to their worker: a refused upload is answered from its head
/// while its body has not been sent (a node that buffered bodies would wait for it, and
/// the read would time out); while a body arrives, the worker's transaction is open
/// with chunks written (seen in `pg_stat_activity` before the body is complete); a
/// client that leaves mid-body leaves no file or chunk, and its transaction ends. Fails
/// if the body is buffered before the worker starts, or if an abandoned upload is kept
/// or keeps its worker.
#[test]
fn uploads_stream_and_an_abandoned_one_leaves_nothing() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let (alice, carol) = (register(&a, "str"), register(&a, "out"));
    let room = create_room(&a, &alice.token);
    let head = |token: &str, len: usize| {
        format!(
            "POST /rooms/{room}/files?name=big.bin HTTP/1.1\r\nHost: t\r\n\
             Authorization: Bearer {token}\r\nContent-Length: {len}\r\n\r\n"
        )
    };
    let mut c = Http::connect(&a);
    c.r.get_ref()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    c.send_raw(head(&carol.token, 10 << 20).as_bytes());
    let r = c.read().expect("refused before the body");
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (403, json!("not_member"))
    );

    let mut pg = db.client();
    let writing = |pg: &mut postgres::Client| -> i64 {
        pg.query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
               AND state LIKE 'idle in transaction%' AND query LIKE 'INSERT INTO file%'",
            &[],
        )
        .unwrap()
        .get(0)
    };
    let until = |pg: &mut postgres::Client, want: fn(i64) -> bool, what: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !want(writing(pg)) {
            assert!(std::time::Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let mut c = Http::connect(&a);
    c.send_raw(head(&alice.token, 5 << 20).as_bytes());
    c.send_raw(&pattern(1 << 20));
    until(
        &mut pg,
        |n| n == 1,
        "the worker writes while the body arrives",
    );
    drop(c);
    until(
        &mut pg,
        |n| n == 0,
        "the abandoned upload's transaction ends",
    );
    let count =
        |pg: &mut postgres::Client, sql: &str| -> i64 { pg.query_one(sql, &[]).unwrap().get(0) };
    assert_eq!(count(&mut pg, "SELECT count(*) FROM files"), 0);
    assert_eq!(count(&mut pg, "SELECT count(*) FROM file_chunks"), 0);
    // The same body sent whole is stored.
    let f = uploaded(&a, &alice.token, &room, "big.bin", &pattern(5 << 20));
    assert_eq!(f["sha256"], hex_sha256(&pattern(5 << 20)));
    assert_eq!(count(&mut pg, "SELECT count(*) FROM file_chunks"), 20);
}

/// An upload sent with `Expect: 100-continue` (as curl sends large bodies) gets the
/// interim `100 Continue` once its route accepted the head, then its answer. Fails if
/// the server ignores the expectation (curl then waits a second before every upload).
#[test]
fn expect_100_continue_gets_an_interim_answer() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let alice = register(&a, "exp");
    let room = create_room(&a, &alice.token);
    let mut c = Http::connect(&a);
    c.r.get_ref()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let body = pattern(100_000);
    c.send_raw(
        format!(
            "POST /rooms/{room}/files?name=e.bin HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\n\
             Expect: 100-continue\r\nContent-Length: {}\r\n\r\n",
            alice.token,
            body.len()
        )
        .as_bytes(),
    );
    let interim = c.read().expect("an interim answer before the body");
    assert_eq!(interim.status, 100);
    c.send_raw(&body);
    let r = c.read().expect("the answer");
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["sha256"], hex_sha256(&body));
}
