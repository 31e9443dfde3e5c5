use super::*;

/// Feeds `body` cut into pieces of `size` bytes; the events, or the first failure.
fn read(body: &[u8], size: usize) -> Result<Vec<Found>, Malformed> {
    let mut r = Reader::new("XyZ");
    let mut out = Vec::new();
    for piece in body.chunks(size.max(1)) {
        r.feed(piece, &mut out)?;
    }
    r.finish()?;
    Ok(merge(out))
}

/// Joins consecutive `Data` events (how the bytes were cut does not matter).
fn merge(events: Vec<Found>) -> Vec<Found> {
    let mut out: Vec<Found> = Vec::new();
    for e in events {
        match (out.last_mut(), e) {
            (Some(Found::Data(a)), Found::Data(b)) => a.extend(b),
            (_, e) => out.push(e),
        }
    }
    out
}

fn form(parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = Vec::new();
    for (headers, data) in parts {
        b.extend_from_slice(b"--XyZ\r\n");
        b.extend_from_slice(headers.as_bytes());
        b.extend_from_slice(b"\r\n\r\n");
        b.extend_from_slice(data);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(b"--XyZ--\r\n");
    b
}

const FILE: &str = "Content-Disposition: form-data; name=\"file\"; filename=\"a b.png\"\r\n\
                    Content-Type: image/png";

#[test]
fn a_file_part_comes_out_whole_however_the_body_is_cut() {
    // Bytes that look like the start of a delimiter, and CRLFs, inside the file (a
    // whole delimiter cannot be: the sender picks a boundary the data lacks).
    let data: &[u8] = b"\r\n--XyQ-not\r\n--Xy\r\n-\r\n\r\n--x\r\n--Xy";
    let body = form(&[
        ("Content-Disposition: form-data; name=\"caption\"", b"hello"),
        (FILE, data),
    ]);
    let want = vec![
        Found::File("a b.png".into()),
        Found::Data(data.to_vec()),
        Found::End,
    ];
    for size in 1..body.len() + 1 {
        assert_eq!(read(&body, size).unwrap(), want, "pieces of {size}");
    }
}

#[test]
fn preamble_padding_and_epilogue_are_skipped() {
    let mut body = b"a preamble\r\n--XyZ  \t\r\n".to_vec();
    body.extend_from_slice(FILE.as_bytes());
    body.extend_from_slice(b"\r\n\r\n12345\r\n--XyZ--  trailing words\r\nmore");
    let got = read(&body, 7).unwrap();
    assert_eq!(got[1], Found::Data(b"12345".to_vec()));
}

#[test]
fn an_empty_file_input_is_not_a_file_and_fields_are_skipped() {
    let body = form(&[
        (
            "Content-Disposition: form-data; name=\"f\"; filename=\"\"",
            b"",
        ),
        ("Content-Disposition: form-data; name=\"t\"", b"text"),
    ]);
    assert_eq!(read(&body, 5).unwrap(), vec![]);
    // An empty file named is a file (the use case refuses it as empty).
    let body = form(&[(FILE, b"")]);
    assert_eq!(
        read(&body, 3).unwrap(),
        vec![Found::File("a b.png".into()), Found::End]
    );
}

#[test]
fn two_files_are_two_file_events() {
    let body = form(&[(FILE, b"one"), (FILE, b"two")]);
    let got = read(&body, 4).unwrap();
    let files = got.iter().filter(|e| matches!(e, Found::File(_))).count();
    assert_eq!(files, 2);
}

#[test]
fn names_in_their_forms() {
    let name = |cd: &str| {
        let body = form(&[(cd, b"x")]);
        match read(&body, 64).unwrap().first() {
            Some(Found::File(n)) => n.clone(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        name("content-disposition: form-data; filename=\"r\u{e9}sum\u{e9}.pdf\"; name=f"),
        "r\u{e9}sum\u{e9}.pdf"
    );
    assert_eq!(
        name("Content-Disposition: form-data; name=f; filename=\"a%22b;c.txt\""),
        "a\"b;c.txt"
    );
    assert_eq!(
        name("Content-Disposition: form-data; name=f; filename=\"C:\\dir\\x.txt\""),
        "C:\\dir\\x.txt"
    );
    assert_eq!(
        name("Content-Disposition: form-data; name=f; filename=plain.txt"),
        "plain.txt"
    );
    assert_eq!(
        name(
            "Content-Disposition: form-data; name=f; filename=\"x\"; filename*=UTF-8''%E2%82%AC.txt"
        ),
        "\u{20ac}.txt"
    );
}

#[test]
fn what_is_not_the_grammar_is_malformed() {
    let bad = |body: &[u8]| read(body, 5).unwrap_err();
    // Cut before the closing delimiter, or no delimiter at all.
    let mut cut = form(&[(FILE, b"data")]);
    cut.truncate(cut.len() - 9);
    bad(&cut);
    bad(b"no multipart here at all");
    bad(b"");
    // Text after a delimiter, a header without a colon, no Content-Disposition, not
    // form-data.
    bad(b"--XyZ junk\r\n\r\n\r\n--XyZ--");
    bad(&form(&[("Content-Disposition form-data", b"x")]));
    bad(&form(&[("Content-Type: text/plain", b"x")]));
    bad(&form(&[(
        "Content-Disposition: attachment; filename=a",
        b"x",
    )]));
    // Headers that never end.
    let mut long = b"--XyZ\r\nX-Long: ".to_vec();
    long.extend(std::iter::repeat_n(b'a', MAX_HEADER_BYTES + 10));
    bad(&long);
}

#[test]
fn boundaries_from_the_content_type() {
    assert_eq!(boundary("application/octet-stream"), None);
    assert_eq!(
        boundary("multipart/form-data; boundary=----WebKitFormBoundaryA1"),
        Some(Ok("----WebKitFormBoundaryA1".into()))
    );
    assert_eq!(
        boundary("Multipart/Form-Data; charset=utf-8; BOUNDARY=\"a b\""),
        Some(Ok("a b".into()))
    );
    assert!(matches!(boundary("multipart/form-data"), Some(Err(_))));
    assert!(matches!(
        boundary("multipart/form-data; boundary="),
        Some(Err(_))
    ));
    let long = format!("multipart/form-data; boundary={}", "a".repeat(71));
    assert!(matches!(boundary(&long), Some(Err(_))));
}
