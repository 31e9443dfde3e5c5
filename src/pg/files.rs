//! The rows of uploaded files (`files`), as every layer reads them, and the message
//! writer's step that attaches files to the messages of its batch ([`claim`]): a file
//! is attachable once, by its uploader, to a message of its own room.

use crate::base::error::ApiError;
use crate::base::model::iso;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// No such file, or one the caller may not know of (another user's, another room's).
pub const FILE_NOT_FOUND: ApiError = ApiError::NotFound("file_not_found", "File not found");
/// The file is attached to a message already.
pub const FILE_ATTACHED: ApiError = ApiError::Conflict(
    "file_already_attached",
    "This file is attached to a message already",
);

/// A file as the API shows it (`POST /rooms/:id/files`, and in a message's attachments).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct File {
    /// Id.
    pub id: Uuid,
    /// The room it belongs to.
    pub room_id: Uuid,
    /// Who uploaded it.
    pub uploader_id: Uuid,
    /// Name, as shown and offered when saved.
    pub name: String,
    /// Type, detected from the bytes.
    pub mime: &'static str,
    /// Bytes.
    pub size: i64,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
    /// Width in pixels (images whose header says it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<i32>,
    /// Height in pixels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<i32>,
    /// Whether a thumbnail was made (`GET /files/:id/thumbnail`; raster images that
    /// decoded within the limits).
    pub has_thumbnail: bool,
    /// When it was uploaded.
    pub created_at: String,
}

/// The columns of `files` [`from_row`] reads, in its order (a macro so that SQL
/// constants can be built with `concat!`). Whether there is a thumbnail is read from
/// its table (one index probe), so it can never disagree with what is stored.
macro_rules! file_columns {
    () => {
        "id, room_id, uploader_id, name, mime, size, sha256, width, height, created_at, \
         EXISTS (SELECT 1 FROM file_thumbnails t WHERE t.file_id = files.id)"
    };
}
pub(crate) use file_columns;

/// A file from a row of [`file_columns!`].
pub fn from_row(r: &postgres::Row) -> File {
    let at: DateTime<Utc> = r.get(9);
    File {
        id: r.get(0),
        room_id: r.get(1),
        uploader_id: r.get(2),
        name: r.get(3),
        mime: mime_of(r.get(4)),
        size: r.get(5),
        sha256: r.get(6),
        width: r.get(7),
        height: r.get(8),
        has_thumbnail: r.get(10),
        created_at: iso(at),
    }
}

/// The types [`sniff`] recognises; anything else is `application/octet-stream`.
const TYPES: [&str; 6] = [
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "application/octet-stream",
];

/// A stored type as one of [`TYPES`] (anything unknown reads as octets).
fn mime_of(s: &str) -> &'static str {
    TYPES
        .iter()
        .find(|t| **t == s)
        .copied()
        .unwrap_or("application/octet-stream")
}

/// The files a message's checked attachments name (`{"file_id": ...}` items).
pub fn named(attachments: Option<&Value>) -> Vec<Uuid> {
    let Some(Value::Array(items)) = attachments else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|a| a.get("file_id")?.as_str()?.parse().ok())
        .collect()
}

/// Reads (and locks) the files the batch's messages name.
const CLAIM_SQL: &str = concat!(
    "SELECT ",
    file_columns!(),
    ", attached_message_id IS NOT NULL FROM files WHERE id = ANY($1) FOR UPDATE"
);
/// Marks files as attached: (file, message) pairs.
const ATTACH_SQL: &str = "UPDATE files SET attached_message_id = x.mid
     FROM unnest($1::uuid[], $2::int8[]) AS x(fid, mid) WHERE files.id = x.fid";

/// The writer's check of the files its batch's messages attach, in its transaction:
/// `asks[i]` are the files message `i` names (empty for messages without, or already
/// refused). Returns, per message, `Ok(Some(attachments))` with each `{file_id}` item
/// completed with the file (`{"file_id", "file": File}`), `Ok(None)` for a message that
/// names none, or the refusal: `file_not_found` (no such file, another user's, another
/// room's) or `file_already_attached` (attached before, or by an earlier message of the
/// batch).
pub fn claim(
    tx: &mut postgres::Transaction<'_>,
    asks: &[(Uuid, Uuid, Vec<Uuid>, Option<&Value>)],
) -> Result<Vec<Result<Option<Value>, ApiError>>, postgres::Error> {
    let ids: Vec<Uuid> = asks.iter().flat_map(|a| a.2.iter().copied()).collect();
    if ids.is_empty() {
        return Ok(asks.iter().map(|_| Ok(None)).collect());
    }
    let mut found: HashMap<Uuid, (File, bool)> = HashMap::new();
    for row in tx.query(CLAIM_SQL, &[&ids])? {
        let f = from_row(&row);
        found.insert(f.id, (f, row.get(11)));
    }
    let mut taken: HashSet<Uuid> = HashSet::new();
    let mut out = Vec::with_capacity(asks.len());
    for (room, user, files, attachments) in asks {
        if files.is_empty() {
            out.push(Ok(None));
            continue;
        }
        let verdict = files.iter().try_for_each(|id| match found.get(id) {
            Some((f, _)) if f.room_id != *room || f.uploader_id != *user => Err(FILE_NOT_FOUND),
            None => Err(FILE_NOT_FOUND),
            Some((_, true)) => Err(FILE_ATTACHED),
            Some(_) if taken.contains(id) => Err(FILE_ATTACHED),
            Some(_) => Ok(()),
        });
        if let Err(e) = verdict {
            out.push(Err(e));
            continue;
        }
        taken.extend(files.iter().copied());
        let items = match attachments {
            Some(Value::Array(items)) => items
                .iter()
                .map(|a| {
                    let f = a
                        .get("file_id")
                        .and_then(Value::as_str)
                        .and_then(|s| s.parse::<Uuid>().ok())
                        .and_then(|id| found.get(&id));
                    match f {
                        Some((f, _)) => serde_json::json!({"file_id": f.id, "file": f}),
                        None => a.clone(),
                    }
                })
                .collect(),
            _ => Vec::new(),
        };
        out.push(Ok(Some(Value::Array(items))));
    }
    Ok(out)
}

/// Records that each file of `pairs` is attached to its message (its stored id).
pub fn attach(
    tx: &mut postgres::Transaction<'_>,
    pairs: &[(Uuid, i64)],
) -> Result<(), postgres::Error> {
    if pairs.is_empty() {
        return Ok(());
    }
    let (files, messages): (Vec<Uuid>, Vec<i64>) = pairs.iter().copied().unzip();
    tx.execute(ATTACH_SQL, &[&files, &messages])?;
    Ok(())
}
