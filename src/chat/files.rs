//! Files uploaded into rooms (run on worker threads), one use case for every transport.
//! A file's bytes live in PostgreSQL (`file_chunks`, [`CHUNK_BYTES`] a row) so that
//! every node serves every file. Its type is detected from its first bytes ([`sniff`]),
//! never taken from the client; its name is the client's, reduced to what shows
//! ([`file_name`]). Uploading is asked `Action::Upload` (as sending), downloading
//! `Action::Download` (as reading history). A file is attached to a message by the
//! message writer (`pg/writer.rs`, once, by its uploader, in its own room); deleting that
//! message deletes the file ([`forget`]), and the foreign keys do the same for a message
//! removed by retention and for a deleted room.

use crate::base::access::Action;
use crate::base::error::ApiError;
use crate::base::model::Identity;
use crate::base::names;
use crate::chat::rooms;
use crate::pg::files::file_columns;
pub use crate::pg::files::{FILE_NOT_FOUND, File, from_row};
use crate::pg::pool::Worker;
use postgres::GenericClient;
use std::io::{self, Write};
use uuid::Uuid;

pub mod sweep;
mod upload;
pub use upload::{Limits, Source, incomplete, upload};

/// Bytes per stored chunk: each row a modest TOAST value, and a download holds one.
pub const CHUNK_BYTES: usize = 256 * 1024;
/// Most characters of a stored file name.
pub const MAX_NAME_CHARS: usize = 255;

/// The type of `bytes` from their magic numbers.
pub fn sniff(b: &[u8]) -> &'static str {
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if b.starts_with(&[0xff, 0xd8, 0xff]) {
        "image/jpeg"
    } else if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        "image/gif"
    } else if b.len() >= 12 && b.starts_with(b"RIFF") && &b[8..12] == b"WEBP" {
        "image/webp"
    } else if b.starts_with(b"%PDF-") {
        "application/pdf"
    } else {
        "application/octet-stream"
    }
}

/// Whether a browser may show a file of this type in place: images only. Everything
/// else (PDF, and HTML, SVG or script sent as octets) is offered as a download.
pub fn inline(mime: &str) -> bool {
    matches!(
        mime,
        "image/png" | "image/jpeg" | "image/gif" | "image/webp"
    )
}

fn be16(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from(u16::from_be_bytes(
        b.get(at..at + 2)?.try_into().ok()?,
    )))
}

fn le16(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from(u16::from_le_bytes(
        b.get(at..at + 2)?.try_into().ok()?,
    )))
}

fn le24(b: &[u8], at: usize) -> Option<u32> {
    let x = b.get(at..at + 3)?;
    Some(u32::from(x[0]) | u32::from(x[1]) << 8 | u32::from(x[2]) << 16)
}

/// Width and height of an image of type `mime`, from its header (`None` when it does
/// not say, or says nonsense).
pub fn dimensions(mime: &str, b: &[u8]) -> Option<(u32, u32)> {
    let (w, h) = match mime {
        "image/png" if b.get(12..16) == Some(b"IHDR") => (
            u32::from_be_bytes(b.get(16..20)?.try_into().ok()?),
            u32::from_be_bytes(b.get(20..24)?.try_into().ok()?),
        ),
        "image/gif" => (le16(b, 6)?, le16(b, 8)?),
        "image/webp" => match b.get(12..16)? {
            b"VP8 " => (le16(b, 26)? & 0x3fff, le16(b, 28)? & 0x3fff),
            b"VP8L" => {
                let x = b.get(21..25)?;
                let bits = u32::from_le_bytes(x.try_into().ok()?);
                (1 + (bits & 0x3fff), 1 + ((bits >> 14) & 0x3fff))
            }
            b"VP8X" => (1 + le24(b, 24)?, 1 + le24(b, 27)?),
            _ => return None,
        },
        "image/jpeg" => jpeg_dimensions(b)?,
        _ => return None,
    };
    (w > 0 && h > 0 && w <= i32::MAX as u32 && h <= i32::MAX as u32).then_some((w, h))
}

/// A JPEG's size from its first start-of-frame segment.
fn jpeg_dimensions(b: &[u8]) -> Option<(u32, u32)> {
    let mut at = 2;
    while at + 4 <= b.len() {
        if b[at] != 0xff {
            return None;
        }
        let marker = b[at + 1];
        if marker == 0xff {
            at += 1;
            continue;
        }
        let len = be16(b, at + 2)? as usize;
        let sof = matches!(marker, 0xc0..=0xcf) && !matches!(marker, 0xc4 | 0xc8 | 0xcc);
        if sof {
            return Some((be16(b, at + 7)?, be16(b, at + 5)?));
        }
        at += 2 + len;
    }
    None
}

/// The name a file is stored under, from the client's: the last part of a path (no
/// `/` or `\`), what of it shows ([`names::visible`]: no control, invisible or
/// direction-changing character, single spaces), at most [`MAX_NAME_CHARS`]
/// characters; `file` when nothing is left.
pub fn file_name(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let shown = names::visible(base);
    let cut: String = shown.chars().take(MAX_NAME_CHARS).collect();
    let cut = cut.trim();
    if cut.is_empty() || cut == "." || cut == ".." {
        "file".into()
    } else {
        cut.to_string()
    }
}

/// Check step of an upload that needs no database: the name to store. (An empty body is
/// refused by [`upload`] after the access check, so a room hides from non-members alike.)
pub fn check_upload(raw_name: Option<&str>) -> String {
    file_name(raw_name.unwrap_or("file"))
}

/// A file by id.
const OPEN_SQL: &str = concat!("SELECT ", file_columns!(), " FROM files WHERE id = $1");

/// Check step of a download: the file exists and `who` may read its room's stream now.
/// A file the caller may not see is `file_not_found` when its room hides itself, and
/// the room's refusal (`not_member`) when the room is public.
pub fn open(w: &mut Worker, who: &Identity, id: Uuid) -> Result<File, ApiError> {
    let c = w.client()?;
    let row = c.query_opt(OPEN_SQL, &[&id])?.ok_or(FILE_NOT_FOUND)?;
    let file = from_row(&row);
    match rooms::require(c, file.room_id, who.user_id, Action::Download) {
        Ok(()) => Ok(file),
        Err(e) if e.status() == 404 => Err(FILE_NOT_FOUND),
        Err(e) => Err(e),
    }
}

/// One chunk of a file.
const CHUNK_SQL: &str = "SELECT data FROM file_chunks WHERE file_id = $1 AND n = $2";

/// Write step of a download: bytes `from..=to` of `file`, one chunk read at a time (no
/// transaction stays open while the client is slow).
///
/// Chunks are read from a hot standby when one is configured and holds them, else from
/// the primary. A chunk row the standby has is the primary's: a file's chunks commit
/// with its row in one transaction and are never changed, only deleted. So a chunk
/// found there is used, and the first one missing (a file the standby has not replayed
/// yet, or one deleted since) sends this and every later chunk to the primary.
pub fn write_range(
    w: &mut Worker,
    file: &File,
    from: u64,
    to: u64,
    out: &mut dyn Write,
) -> io::Result<()> {
    let chunk = CHUNK_BYTES as u64;
    let (first, last) = (from / chunk, to / chunk);
    let mut standby = true;
    for n in first..=last {
        let n32 = n as i32;
        let mut data = None;
        if standby && let Some(r) = w.replica() {
            match r.read(CHUNK_SQL, |c, st| {
                Ok(c.query_opt(st, &[&file.id, &n32])?
                    .map(|row| row.get::<_, Vec<u8>>(0)))
            }) {
                Ok(d) => data = Some(d),
                Err(_) => standby = false,
            }
        }
        let data = match data {
            Some(d) => d,
            None => {
                let (c, st) = w
                    .prepared(CHUNK_SQL)
                    .map_err(|e| io::Error::other(e.to_string()))?;
                let row = c
                    .query_opt(&st, &[&file.id, &n32])
                    .map_err(|e| io::Error::other(e.to_string()))?
                    .ok_or_else(|| io::Error::other(format!("file {} lacks chunk {n}", file.id)))?;
                row.get::<_, Vec<u8>>(0)
            }
        };
        let start = if n == first {
            (from % chunk) as usize
        } else {
            0
        };
        let end = if n == last {
            (to % chunk) as usize + 1
        } else {
            data.len()
        };
        let part = data
            .get(start..end.min(data.len()))
            .ok_or_else(|| io::Error::other(format!("file {} chunk {n} is short", file.id)))?;
        out.write_all(part)?;
    }
    Ok(())
}

/// Deletes the files attached to message `message` of `room`, with their bytes (in the
/// transaction that deletes the message; the chunks go by their foreign key).
pub fn forget(c: &mut impl GenericClient, room: Uuid, message: i64) -> Result<(), ApiError> {
    c.execute(
        "DELETE FROM files WHERE attached_message_id = $1 AND room_id = $2",
        &[&message, &room],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_come_from_the_bytes() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\x01\x00\0\0\0\x80rest";
        assert_eq!(sniff(png), "image/png");
        assert_eq!(dimensions("image/png", png), Some((256, 128)));
        let gif = b"GIF89a\x0a\x00\x14\x00rest";
        assert_eq!(sniff(gif), "image/gif");
        assert_eq!(dimensions("image/gif", gif), Some((10, 20)));
        let jpeg = [
            0xff, 0xd8, 0xff, 0xe0, 0, 4, 0, 0, 0xff, 0xc0, 0, 11, 8, 0, 30, 0, 40, 3,
        ];
        assert_eq!(sniff(&jpeg), "image/jpeg");
        assert_eq!(dimensions("image/jpeg", &jpeg), Some((40, 30)));
        let mut webp = b"RIFF\0\0\0\0WEBPVP8X\0\0\0\0\0\0\0\0".to_vec();
        webp.extend([9, 0, 0, 4, 0, 0]);
        assert_eq!(sniff(&webp), "image/webp");
        assert_eq!(dimensions("image/webp", &webp), Some((10, 5)));
        assert_eq!(sniff(b"%PDF-1.7"), "application/pdf");
        assert_eq!(sniff(b"<html><script>"), "application/octet-stream");
        assert_eq!(sniff(b"<svg xmlns="), "application/octet-stream");
        assert_eq!(dimensions("image/png", b"\x89PNG\r\n\x1a\n"), None);
        assert!(inline("image/png") && !inline("application/pdf"));
    }

    #[test]
    fn names_keep_what_shows() {
        assert_eq!(file_name("../../etc/passwd"), "passwd");
        assert_eq!(file_name("C:\\Users\\a\\report.pdf"), "report.pdf");
        assert_eq!(file_name("invoice\u{202e}fdp.exe"), "invoicefdp.exe");
        assert_eq!(file_name("a\r\nb\tc.txt"), "a b c.txt");
        assert_eq!(file_name(""), "file");
        assert_eq!(file_name("dir/.."), "file");
        assert_eq!(file_name(&"x".repeat(300)).chars().count(), MAX_NAME_CHARS);
    }
}
