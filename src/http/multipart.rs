//! `multipart/form-data` (RFC 7578, as browsers' forms send files), read incrementally:
//! the body is fed in whatever pieces it arrives in and the file's bytes come out as
//! they are found, so an upload is never held whole. Runs on the worker that stores
//! the upload (`http/files.rs`), never on an event loop.
//!
//! The reader keeps at most one delimiter's length of the body back (a delimiter may be
//! cut between two pieces) plus a part's headers (at most [`MAX_HEADER_BYTES`]). A part
//! is a file when its `Content-Disposition` has a non-empty `filename` (a form's empty
//! file input sends `filename=""` and no bytes: not a file); other parts (form fields)
//! are skipped. Anything that is not the grammar (no opening delimiter, a delimiter line
//! with text after it, headers without their blank line or too long, a body that ends
//! before the closing delimiter) is [`Malformed`].

/// Most bytes of one part's headers.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Most bytes of whitespace allowed after a delimiter (RFC 2046 transport padding).
const MAX_PADDING: usize = 64;

/// The body is not `multipart/form-data` as its head said.
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

/// What the reader found in the bytes fed so far, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// A file part starts, with the name its `filename` gave.
    File(String),
    /// Bytes of the current file part.
    Data(Vec<u8>),
    /// The current file part ended.
    End,
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    /// Before the first delimiter (a preamble is skipped).
    Preamble,
    /// Just after a delimiter: `--` closes, padding and CRLF open a part.
    AfterDelimiter,
    /// Reading a part's headers.
    Headers,
    /// Reading a part's body (`true`: a file part, whose bytes are given out).
    Body(bool),
    /// After the closing delimiter: the rest is ignored.
    Epilogue,
}

/// An incremental reader of one `multipart/form-data` body.
pub struct Reader {
    /// `\r\n--` and the boundary: every delimiter, the first one included (the reader
    /// starts as if a CRLF came before the body).
    delimiter: Vec<u8>,
    buf: Vec<u8>,
    state: State,
}

/// The boundary of a `Content-Type: multipart/form-data; boundary=...` value; `None`
/// for another type. A multipart type without a usable boundary is [`Malformed`].
pub fn boundary(content_type: &str) -> Option<Result<String, Malformed>> {
    let mut params = content_type.split(';');
    let kind = params.next()?.trim();
    if !kind.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    let found = params.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("boundary").then(|| v.trim())
    });
    let b = found.map(|v| {
        v.strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v)
    });
    // RFC 2046: 1 to 70 characters, printable, not ending in a space.
    Some(match b {
        Some(b)
            if (1..=70).contains(&b.len())
                && b.bytes().all(|c| c.is_ascii_graphic() || c == b' ')
                && !b.ends_with(' ') =>
        {
            Ok(b.to_string())
        }
        _ => Err(Malformed(
            "the multipart Content-Type has no valid boundary",
        )),
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

impl Reader {
    /// A reader of a body delimited by `boundary`.
    pub fn new(boundary: &str) -> Reader {
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary.as_bytes());
        Reader {
            // The virtual CRLF before the body lets the first delimiter match too.
            buf: b"\r\n".to_vec(),
            delimiter,
            state: State::Preamble,
        }
    }

    /// Reads `input`, the next bytes of the body, adding what it completes to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<Found>) -> Result<(), Malformed> {
        if self.state == State::Epilogue {
            return Ok(());
        }
        self.buf.extend_from_slice(input);
        while self.step(out)? {}
        Ok(())
    }

    /// The body ended: fails unless the closing delimiter was read.
    pub fn finish(&self) -> Result<(), Malformed> {
        match self.state {
            State::Epilogue => Ok(()),
            _ => Err(Malformed(
                "the multipart body ends before its closing delimiter",
            )),
        }
    }

    /// One move of the state machine; `false` when it needs more bytes.
    fn step(&mut self, out: &mut Vec<Found>) -> Result<bool, Malformed> {
        let keep = self.delimiter.len() - 1;
        match self.state {
            State::Preamble => match find(&self.buf, &self.delimiter) {
                Some(at) => {
                    self.buf.drain(..at + self.delimiter.len());
                    self.state = State::AfterDelimiter;
                    Ok(true)
                }
                None => {
                    let cut = self.buf.len().saturating_sub(keep);
                    self.buf.drain(..cut);
                    Ok(false)
                }
            },
            State::AfterDelimiter => {
                if self.buf.len() < 2 {
                    return Ok(false);
                }
                if self.buf.starts_with(b"--") {
                    self.buf.clear();
                    self.state = State::Epilogue;
                    return Ok(false);
                }
                let pad = self
                    .buf
                    .iter()
                    .take_while(|c| **c == b' ' || **c == b'\t')
                    .count();
                if pad > MAX_PADDING {
                    return Err(Malformed("a multipart delimiter line is too long"));
                }
                let rest = &self.buf[pad..];
                if rest.len() < 2 {
                    return Ok(false);
                }
                if !rest.starts_with(b"\r\n") {
                    return Err(Malformed("a multipart delimiter is followed by text"));
                }
                self.buf.drain(..pad + 2);
                self.state = State::Headers;
                Ok(true)
            }
            State::Headers => {
                let end = if self.buf.starts_with(b"\r\n") {
                    Some((0, 2))
                } else {
                    find(&self.buf, b"\r\n\r\n").map(|at| (at, at + 4))
                };
                let Some((at, past)) = end else {
                    if self.buf.len() > MAX_HEADER_BYTES {
                        return Err(Malformed("a multipart part's headers are too long"));
                    }
                    return Ok(false);
                };
                if at > MAX_HEADER_BYTES {
                    return Err(Malformed("a multipart part's headers are too long"));
                }
                let name = file_name_of(&String::from_utf8_lossy(&self.buf[..at]))?;
                self.buf.drain(..past);
                let file = name.is_some();
                if let Some(n) = name {
                    out.push(Found::File(n));
                }
                self.state = State::Body(file);
                Ok(true)
            }
            State::Body(file) => match find(&self.buf, &self.delimiter) {
                Some(at) => {
                    if file {
                        if at > 0 {
                            out.push(Found::Data(self.buf[..at].to_vec()));
                        }
                        out.push(Found::End);
                    }
                    self.buf.drain(..at + self.delimiter.len());
                    self.state = State::AfterDelimiter;
                    Ok(true)
                }
                None => {
                    let cut = self.buf.len().saturating_sub(keep);
                    if file && cut > 0 {
                        out.push(Found::Data(self.buf[..cut].to_vec()));
                    }
                    self.buf.drain(..cut);
                    Ok(false)
                }
            },
            State::Epilogue => Ok(false),
        }
    }
}

/// The `filename` of a part's headers when it is a file part (a non-empty name).
fn file_name_of(headers: &str) -> Result<Option<String>, Malformed> {
    for line in headers.split("\r\n") {
        let Some((name, value)) = line.split_once(':') else {
            return Err(Malformed(
                "a multipart part has a header line without a colon",
            ));
        };
        if !name.trim().eq_ignore_ascii_case("content-disposition") {
            continue;
        }
        let params = params(value);
        let Some((kind, _)) = params.first() else {
            return Err(Malformed(
                "a multipart part has an empty Content-Disposition",
            ));
        };
        if !kind.eq_ignore_ascii_case("form-data") {
            return Err(Malformed("a multipart part is not form-data"));
        }
        let get = |k: &str| {
            params
                .iter()
                .skip(1)
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .and_then(|(_, v)| v.clone())
        };
        // RFC 5987's extended form wins when a client sends it (RFC 7578 says not to,
        // but some do); browsers send `filename` in UTF-8 with `"`, CR and LF
        // percent-encoded (the HTML standard), which is undone here.
        let name = match get("filename*").and_then(|v| ext_value(&v)) {
            Some(n) => Some(n),
            None => get("filename").map(|v| {
                v.replace("%22", "\"")
                    .replace("%0D", "\r")
                    .replace("%0A", "\n")
            }),
        };
        return Ok(name.filter(|n| !n.is_empty()));
    }
    Err(Malformed("a multipart part has no Content-Disposition"))
}

/// `kind; a=b; c="d e"` as (name, value) pairs, the first the kind without a value.
fn params(value: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut rest = value;
    loop {
        let end = rest.find(['=', ';']).unwrap_or(rest.len());
        let name = rest[..end].trim().to_string();
        rest = &rest[end..];
        let mut val = None;
        if let Some(r) = rest.strip_prefix('=') {
            let r = r.trim_start();
            if let Some(q) = r.strip_prefix('"') {
                // A quoted string: up to the closing quote, `\"` an escaped quote (a
                // lone backslash stays: old browsers sent Windows paths unescaped).
                let mut v = String::new();
                let mut close = q.len();
                let mut it = q.char_indices().peekable();
                while let Some((i, c)) = it.next() {
                    match c {
                        '"' => {
                            close = i + 1;
                            break;
                        }
                        '\\' if matches!(it.peek(), Some((_, '"'))) => {
                            v.push('"');
                            it.next();
                        }
                        c => v.push(c),
                    }
                }
                val = Some(v);
                let after = &q[close..];
                rest = &after[after.find(';').unwrap_or(after.len())..];
            } else {
                let end = r.find(';').unwrap_or(r.len());
                val = Some(r[..end].trim().to_string());
                rest = &r[end..];
            }
        }
        if !name.is_empty() {
            out.push((name, val));
        }
        match rest.strip_prefix(';') {
            Some(r) => rest = r,
            None => return out,
        }
    }
}

/// An RFC 5987 value, `UTF-8''percent%20encoded` (UTF-8 only).
fn ext_value(v: &str) -> Option<String> {
    let mut parts = v.splitn(3, '\'');
    let charset = parts.next()?;
    let _lang = parts.next()?;
    let encoded = parts.next()?;
    if !charset.eq_ignore_ascii_case("utf-8") {
        return None;
    }
    let b = encoded.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
#[path = "multipart/tests.rs"]
mod tests;
