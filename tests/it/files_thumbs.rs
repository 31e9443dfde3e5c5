//! The download side of files: thumbnails of real PNG, JPEG and WebP images made with the
//! `image` crate here (their sizes checked by decoding what the server sends back),
//! hostile images (a decompression bomb, a corrupt JPEG) stored as plain files, a
//! thumbnail leaving with its file, and signed URLs: opened without a token on another
//! node, refused when expired, tampered with or used for another file or user, and
//! refused at once to a member kicked since.

use crate::support::*;
use chatd::chat::file_links::UrlKey;
use image::{DynamicImage, ImageFormat};
use serde_json::{Value, json};
use std::io::{BufRead, Cursor, Read};

/// `img` encoded as `format`.
fn encoded(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// An opaque picture of `w` x `h` with gradients (so JPEG has something to encode).
fn photo(w: u32, h: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    }))
}

/// `POST /rooms/:room/files?name=` that must succeed: the file.
fn uploaded(addr: &str, token: &str, room: &str, name: &str, bytes: &[u8]) -> Value {
    let mut c = Http::connect(addr);
    let head = format!(
        "POST /rooms/{room}/files?name={name} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        bytes.len()
    );
    c.send_raw(head.as_bytes());
    c.send_raw(bytes);
    let r = c.read().expect("an answer");
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// `GET path` with an optional token and extra header lines: the head and the whole
/// body (chunked or sized).
fn get(addr: &str, path: &str, token: Option<&str>, extra: &str) -> (Resp, Vec<u8>) {
    let mut c = Http::connect(addr);
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    c.send_raw(
        format!("GET {path} HTTP/1.1\r\nHost: t\r\n{auth}{extra}Connection: close\r\n\r\n")
            .as_bytes(),
    );
    let head = read_response(&mut c.r, true).expect("a head");
    if head.header("transfer-encoding") != Some("chunked") {
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

/// The error code of an answer's JSON body.
fn code(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body).unwrap_or(Value::Null)["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn count(db: &TestDb, sql: &str) -> i64 {
    db.client().query_one(sql, &[]).unwrap().get(0)
}

/// The thumbnail of file `f` for `token`: it decodes as its `Content-Type` says, at
/// `want` pixels; the headers show it inline and keep it from acting as a page.
fn thumbnail_is(addr: &str, token: &str, f: &Value, mime: &str, want: (u32, u32)) {
    let id = f["id"].as_str().unwrap();
    assert_eq!(f["has_thumbnail"], true, "{f}");
    let (head, body) = get(addr, &format!("/files/{id}/thumbnail"), Some(token), "");
    assert_eq!(head.status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(head.header("content-type"), Some(mime));
    assert_eq!(head.header("content-disposition"), Some("inline"));
    assert_eq!(head.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        head.header("content-security-policy"),
        Some("sandbox; default-src 'none'")
    );
    assert_eq!(head.header("cache-control"), Some("private"));
    let format = ImageFormat::from_mime_type(mime).unwrap();
    let img = image::load_from_memory_with_format(&body, format).expect("a decodable thumbnail");
    assert_eq!((img.width(), img.height()), want, "{mime} thumbnail of {f}");
    let etag = head.header("etag").unwrap().to_string();
    let (again, body) = get(
        addr,
        &format!("/files/{id}/thumbnail"),
        Some(token),
        &format!("If-None-Match: {etag}\r\n"),
    );
    assert_eq!((again.status, body.len()), (304, 0));
}

/// A PNG of 800 x 600, a JPEG of 1000 x 400 and a WebP of 300 x 900 with transparency
/// get thumbnails whose longest side is 320 (JPEG for the opaque ones, PNG for the
/// transparent one), their sizes stated on the file; a GIF smaller than 320 keeps its
/// size; a PDF gets none (404 `thumbnail_not_found`). Fails if thumbnails are not made,
/// are enlarged, lose their aspect, or a transparent image is flattened into JPEG.
#[test]
fn png_jpeg_and_webp_get_thumbnails_of_their_shape() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let alice = register(&a, "th");
    let room = create_room(&a, &alice.token);
    let png = uploaded(
        &a,
        &alice.token,
        &room,
        "p.png",
        &encoded(&photo(800, 600), ImageFormat::Png),
    );
    assert_eq!(
        (png["width"].clone(), png["height"].clone()),
        (json!(800), json!(600))
    );
    thumbnail_is(&a, &alice.token, &png, "image/jpeg", (320, 240));
    let jpeg_bytes = encoded(&photo(1000, 400), ImageFormat::Jpeg);
    let jpeg = uploaded(&a, &alice.token, &room, "j.jpg", &jpeg_bytes);
    assert_eq!(jpeg["mime"], "image/jpeg");
    assert_eq!(
        (jpeg["width"].clone(), jpeg["height"].clone()),
        (json!(1000), json!(400))
    );
    thumbnail_is(&a, &alice.token, &jpeg, "image/jpeg", (320, 128));
    let clear = DynamicImage::ImageRgba8(image::RgbaImage::from_fn(300, 900, |x, y| {
        image::Rgba([
            (x % 256) as u8,
            40,
            (y % 256) as u8,
            if x < 150 { 0 } else { 255 },
        ])
    }));
    let webp = uploaded(
        &a,
        &alice.token,
        &room,
        "w.webp",
        &encoded(&clear, ImageFormat::WebP),
    );
    assert_eq!(webp["mime"], "image/webp");
    assert_eq!(
        (webp["width"].clone(), webp["height"].clone()),
        (json!(300), json!(900))
    );
    thumbnail_is(&a, &alice.token, &webp, "image/png", (107, 320));
    let gif = uploaded(
        &a,
        &alice.token,
        &room,
        "g.gif",
        &encoded(&photo(50, 40), ImageFormat::Gif),
    );
    thumbnail_is(&a, &alice.token, &gif, "image/jpeg", (50, 40));
    let pdf = uploaded(&a, &alice.token, &room, "d.pdf", b"%PDF-1.7 not an image");
    assert_eq!(pdf["has_thumbnail"], false);
    let (head, body) = get(
        &a,
        &format!("/files/{}/thumbnail", pdf["id"].as_str().unwrap()),
        Some(&alice.token),
        "",
    );
    assert_eq!(
        (head.status, code(&body)),
        (404, "thumbnail_not_found".into())
    );
    assert_eq!(count(&db, "SELECT count(*) FROM file_thumbnails"), 4);
    // The original is untouched and still served inline as itself.
    let (head, body) = get(
        &a,
        &format!("/files/{}", jpeg["id"].as_str().unwrap()),
        Some(&alice.token),
        "",
    );
    assert_eq!(body, jpeg_bytes);
    assert!(
        head.header("content-disposition")
            .unwrap()
            .starts_with("inline;")
    );
}

/// A PNG whose header claims 100,000 x 100,000 pixels (30 GB decoded) and a JPEG whose
/// scan is garbage after its headers are stored as plain files: 201, no
/// thumbnail, downloadable byte for byte, and the node answers on. Fails if the bomb is
/// decoded (the test would run out of memory or time), or if a bad image fails its
/// upload or the node.
#[test]
fn a_bomb_and_a_corrupt_jpeg_are_stored_as_plain_files() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let alice = register(&a, "bomb");
    let room = create_room(&a, &alice.token);
    let mut bomb = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    bomb.extend(100_000u32.to_be_bytes());
    bomb.extend(100_000u32.to_be_bytes());
    bomb.extend([8, 2, 0, 0, 0]);
    bomb.extend([0x5b, 0x3f, 0x1c, 0x2a]); // (any CRC)
    bomb.extend(std::iter::repeat_n(0u8, 4096));
    let f = uploaded(&a, &alice.token, &room, "bomb.png", &bomb);
    assert_eq!(f["mime"], "image/png");
    assert_eq!(f["has_thumbnail"], false);
    assert_eq!(
        (f["width"].clone(), f["height"].clone()),
        (json!(100_000), json!(100_000))
    );
    let id = f["id"].as_str().unwrap();
    let (head, body) = get(
        &a,
        &format!("/files/{id}/thumbnail"),
        Some(&alice.token),
        "",
    );
    assert_eq!(
        (head.status, code(&body)),
        (404, "thumbnail_not_found".into())
    );
    let (head, body) = get(&a, &format!("/files/{id}"), Some(&alice.token), "");
    assert_eq!((head.status, body == bomb), (200, true));

    // A real JPEG's headers (its size among them), then garbage where the scan should
    // start (no 0xFF: no marker a decoder could resynchronise on).
    let good = encoded(&photo(640, 480), ImageFormat::Jpeg);
    let sos = good.windows(2).position(|w| w == [0xff, 0xda]).unwrap();
    let mut corrupt = good[..sos].to_vec();
    corrupt.extend((0..20_000u32).map(|i| (i * 7919 % 251) as u8));
    let f = uploaded(&a, &alice.token, &room, "bad.jpg", &corrupt);
    assert_eq!(f["mime"], "image/jpeg");
    assert_eq!(f["has_thumbnail"], false, "{f}");
    assert_eq!(
        (f["width"].clone(), f["height"].clone()),
        (json!(640), json!(480))
    );
    let (head, body) = get(
        &a,
        &format!("/files/{}", f["id"].as_str().unwrap()),
        Some(&alice.token),
        "",
    );
    assert_eq!((head.status, body == corrupt), (200, true));
    let junk = uploaded(
        &a,
        &alice.token,
        &room,
        "x.webp",
        b"RIFF\x10\0\0\0WEBPVP8 \x04\0\0\0junk",
    );
    assert_eq!(junk["has_thumbnail"], false);
    assert_eq!(count(&db, "SELECT count(*) FROM file_thumbnails"), 0);
    // Still serving.
    let ok = uploaded(
        &a,
        &alice.token,
        &room,
        "ok.png",
        &encoded(&photo(10, 10), ImageFormat::Png),
    );
    assert_eq!(ok["has_thumbnail"], true);
}

/// A message attaching an image carries `has_thumbnail: true`; deleting the message
/// deletes the thumbnail row with the file (counted), and the thumbnail is then 404.
/// Fails if a thumbnail outlives its file.
#[test]
fn a_thumbnail_leaves_with_its_file() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let alice = register(&a, "del");
    let room = create_room(&a, &alice.token);
    let f = uploaded(
        &a,
        &alice.token,
        &room,
        "p.png",
        &encoded(&photo(400, 400), ImageFormat::Png),
    );
    let id = f["id"].as_str().unwrap();
    let (s, m) = request(
        &a,
        "POST",
        &format!("/rooms/{room}/messages"),
        Some(&alice.token),
        Some(&json!({"content": "pic", "attachments": [{"file_id": id}]})),
    );
    assert_eq!(s, 201, "{m}");
    assert_eq!(m["attachments"][0]["file"]["has_thumbnail"], true);
    assert_eq!(count(&db, "SELECT count(*) FROM file_thumbnails"), 1);
    let (s, body) = request(
        &a,
        "DELETE",
        &format!("/rooms/{room}/messages/{}", m["id"]),
        Some(&alice.token),
        None,
    );
    assert_eq!(s, 200, "{body}");
    assert_eq!(count(&db, "SELECT count(*) FROM file_thumbnails"), 0);
    assert_eq!(count(&db, "SELECT count(*) FROM files"), 0);
    let (head, body) = get(
        &a,
        &format!("/files/{id}/thumbnail"),
        Some(&alice.token),
        "",
    );
    assert_eq!((head.status, code(&body)), (404, "file_not_found".into()));
}

/// The signed URLs of a file (`GET /rooms/:id/files/:file_id/url`) open it and its
/// thumbnail without a token on the other node of two (with the file's headers), and
/// with a refused token beside them; a file without a thumbnail has `thumbnail_url`
/// null. Refused with 403: a tampered signature, the signature used for another file
/// or another user (`invalid_signature`), and a URL signed with the right key whose
/// expiry passed (`url_expired`). Without `sig` the token is required as before.
/// Fails if a signature is not checked against its file, user and expiry, or if the
/// key differs between nodes.
#[test]
fn signed_urls_open_without_a_token_on_another_node() {
    let db = TestDb::new();
    let (n1, n2) = (start(&db), start(&db));
    let (a, b) = (n1.addr(), n2.addr());
    let alice = register(&a, "sig");
    let room = create_room(&a, &alice.token);
    let bytes = encoded(&photo(500, 250), ImageFormat::Png);
    let f = uploaded(&a, &alice.token, &room, "s.png", &bytes);
    let id = f["id"].as_str().unwrap();
    let (s, links) = request(
        &a,
        "GET",
        &format!("/rooms/{room}/files/{id}/url"),
        Some(&alice.token),
        None,
    );
    assert_eq!(s, 200, "{links}");
    let url = links["url"].as_str().unwrap().to_string();
    assert!(
        url.starts_with(&format!("/files/{id}?u={}&exp=", alice.id)),
        "{url}"
    );
    assert!(links["expires_at"].as_str().is_some());
    let (head, body) = get(&b, &url, None, "");
    assert_eq!(head.status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(body == bytes, "the bytes differ");
    assert!(
        head.header("content-disposition")
            .unwrap()
            .starts_with("inline;")
    );
    assert_eq!(head.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        head.header("content-security-policy"),
        Some("sandbox; default-src 'none'")
    );
    let thumb = links["thumbnail_url"].as_str().unwrap();
    assert_eq!(
        thumb,
        url.replacen(
            &format!("/files/{id}?"),
            &format!("/files/{id}/thumbnail?"),
            1
        )
    );
    let (head, body) = get(&b, thumb, None, "");
    assert_eq!(
        (head.status, head.header("content-type")),
        (200, Some("image/jpeg"))
    );
    assert!(!body.is_empty());
    let (head, _) = get(&b, &url, Some("not-a-token"), "");
    assert_eq!(head.status, 200, "the signature stands for the token");

    let refused = |path: &str, want: &str| {
        let (head, body) = get(&b, path, None, "");
        assert_eq!(
            (head.status, code(&body)),
            (403, want.to_string()),
            "{path}"
        );
    };
    // Tampered: one character of the signature changed.
    let at = url.rfind("sig=").unwrap() + 4;
    let mut tampered = url.clone().into_bytes();
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    refused(&String::from_utf8(tampered).unwrap(), "invalid_signature");
    // A later expiry with the same signature.
    let exp: i64 = url
        .split("exp=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    refused(
        &url.replace(&format!("exp={exp}"), &format!("exp={}", exp + 3600)),
        "invalid_signature",
    );
    // Another file's path with this query.
    let other = uploaded(&a, &alice.token, &room, "o.bin", b"other bytes");
    let oid = other["id"].as_str().unwrap();
    refused(&url.replacen(id, oid, 1), "invalid_signature");
    // Another user named.
    let bob = register(&a, "sig2");
    refused(&url.replacen(&alice.id, &bob.id, 1), "invalid_signature");
    // Expired: signed with the nodes' key (the test configuration's secret) an hour ago.
    let key = UrlKey::from_config(&config(&db.url));
    let (file, user) = (id.parse().unwrap(), alice.id.parse().unwrap());
    let past = chrono::Utc::now().timestamp() - 3600;
    let sig = key.sign(file, user, past);
    refused(
        &format!("/files/{id}?u={}&exp={past}&sig={sig}", alice.id),
        "url_expired",
    );
    // The same key signs what the nodes accept (the test's key is theirs).
    let later = past + 7200;
    let sig = key.sign(file, user, later);
    let (head, _) = get(
        &b,
        &format!("/files/{id}?u={}&exp={later}&sig={sig}", alice.id),
        None,
        "",
    );
    assert_eq!(head.status, 200);
    // No thumbnail: no thumbnail URL.
    let (s, links) = request(
        &a,
        "GET",
        &format!("/rooms/{room}/files/{oid}/url"),
        Some(&alice.token),
        None,
    );
    assert_eq!(s, 200, "{links}");
    assert_eq!(links["thumbnail_url"], Value::Null);
    // Without a signature the token is needed, as before.
    let (head, body) = get(&b, &format!("/files/{id}"), None, "");
    assert_eq!((head.status, code(&body)), (401, "unauthorized".into()));
    // The URL route names the file's own room only.
    let elsewhere = create_room(&a, &alice.token);
    let (s, body) = request(
        &a,
        "GET",
        &format!("/rooms/{elsewhere}/files/{id}/url"),
        Some(&alice.token),
        None,
    );
    assert_eq!((s, body["code"].clone()), (404, json!("file_not_found")));
}

/// A member's signed URL works until the member is kicked, then is refused at once
/// (the signer's current standing is asked on every request), as is asking for a new
/// one; an outsider of the public room cannot get one. Fails if a signature is taken
/// as access by itself.
#[test]
fn a_kicked_members_signed_url_is_refused_at_once() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let (alice, bob, carol) = (
        register(&a, "own"),
        register(&a, "kick"),
        register(&a, "out"),
    );
    let room = create_room(&a, &alice.token);
    join_room(&a, &bob.token, &room);
    let f = uploaded(
        &a,
        &alice.token,
        &room,
        "k.png",
        &encoded(&photo(64, 64), ImageFormat::Png),
    );
    let id = f["id"].as_str().unwrap();
    let path = format!("/rooms/{room}/files/{id}/url");
    let (s, links) = request(&a, "GET", &path, Some(&bob.token), None);
    assert_eq!(s, 200, "{links}");
    let (url, thumb) = (
        links["url"].as_str().unwrap().to_string(),
        links["thumbnail_url"].as_str().unwrap().to_string(),
    );
    assert_eq!(get(&a, &url, None, "").0.status, 200);
    assert_eq!(get(&a, &thumb, None, "").0.status, 200);
    let (s, body) = request(&a, "GET", &path, Some(&carol.token), None);
    assert_eq!((s, body["code"].clone()), (403, json!("not_member")));
    let (s, body) = request(
        &a,
        "POST",
        &format!("/rooms/{room}/members/{}/kick", bob.id),
        Some(&alice.token),
        None,
    );
    assert_eq!(s, 200, "{body}");
    for u in [&url, &thumb] {
        let (head, body) = get(&a, u, None, "");
        assert_eq!(
            (head.status, code(&body)),
            (403, "not_member".into()),
            "{u}"
        );
    }
    let (s, body) = request(&a, "GET", &path, Some(&bob.token), None);
    assert_eq!((s, body["code"].clone()), (403, json!("not_member")));
}
