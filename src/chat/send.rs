//! Sending a message: the one use case behind the WebSocket's `send_message` and
//! `POST /rooms/:id/messages`.
//!
//! The check step ([`check`]) is what can be decided from the message alone: its content,
//! its `client_msg_id` and its attachments, against the configured [`Rules`]. The do step
//! ([`Sender::submit`]) hands it to the room's writer without waiting: the writer decides the
//! sender's access for its whole batch with the access rule (`Action::Send`, with the
//! room locked), checks the reply's target, stores, and calls the reply; a stored
//! message also moves the sender's read mark (quietly: the sender knows its seq).

use crate::base::error::ApiError;
use crate::base::model::{Identity, Message};
use crate::chat::mentions;
use crate::chat::messages::{self, Rules};
use crate::chat::reads::{Mark, Reads};
use crate::pg::writer::{Extra, WriteJob, Writers};
use std::sync::Arc;
use uuid::Uuid;

/// A message as a client asks to send it.
#[derive(Clone, Debug, PartialEq)]
pub struct Draft {
    /// Room.
    pub room: Uuid,
    /// Text.
    pub content: String,
    /// The sender's idempotency key.
    pub client_msg_id: Option<String>,
    /// The message it replies to (a message of the same room; the writer checks).
    pub reply_to: Option<i64>,
    /// Attachment metadata, as sent.
    pub attachments: Option<serde_json::Value>,
}

/// A send the writers could not take now (`unavailable`), with the key the answer names.
#[derive(Debug)]
pub struct NotQueued {
    /// The draft's `client_msg_id`.
    pub client_msg_id: Option<String>,
}

/// Checks a draft: content, `client_msg_id`, attachments (at most
/// `rules.max_attachments`, each checked and trimmed to its four fields). Returns it
/// ready for [`Sender::submit`].
pub fn check(mut d: Draft, rules: &Rules) -> Result<Draft, ApiError> {
    messages::check_content(&d.content)?;
    if let Some(id) = &d.client_msg_id {
        messages::check_client_msg_id(id)?;
    }
    d.attachments = match d.attachments.take() {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(messages::check_attachments(&v, rules.max_attachments)?),
    };
    Ok(d)
}

/// The send use case's handle on the database side: the message writers and the read
/// marks a stored message moves. The transports hold this, never the writers themselves.
#[derive(Clone)]
pub struct Sender {
    writers: Writers,
    reads: Reads,
    room_mention_max: i64,
}

impl Sender {
    /// A handle over the node's writers and read-marks thread; rooms of at most
    /// `room_mention_max` members let any member mention the whole room.
    pub fn new(writers: Writers, reads: Reads, room_mention_max: i64) -> Sender {
        Sender {
            writers,
            reads,
            room_mention_max,
        }
    }

    /// Hands a checked draft from `who` to its room's writer, without blocking; `reply`
    /// gets the stored message (or why not) once its batch commits, on the writer's thread.
    pub fn submit<F>(&self, who: Identity, d: Draft, reply: F) -> Result<(), NotQueued>
    where
        F: FnOnce(Result<Arc<Message>, ApiError>) + Send + 'static,
    {
        self.queue(who, d, false, reply)
    }

    /// [`Sender::submit`] for a message the server API posts as `who`: the same rules,
    /// except that the room's slow mode does not hold it (the key holds the server's
    /// authority).
    pub fn submit_by_key<F>(&self, who: Identity, d: Draft, reply: F) -> Result<(), NotQueued>
    where
        F: FnOnce(Result<Arc<Message>, ApiError>) + Send + 'static,
    {
        self.queue(who, d, true, reply)
    }

    fn queue<F>(&self, who: Identity, d: Draft, by_key: bool, reply: F) -> Result<(), NotQueued>
    where
        F: FnOnce(Result<Arc<Message>, ApiError>) + Send + 'static,
    {
        let reads = self.reads.clone();
        // Parsed here, off the writer: a text without `@` costs one scan and nothing more.
        let mentions = mentions::parse(&d.content, self.room_mention_max);
        let extra =
            (d.reply_to.is_some() || d.attachments.is_some() || mentions.is_some()).then(|| {
                Box::new(Extra {
                    reply_to: d.reply_to,
                    attachments: d.attachments,
                    mentions,
                })
            });
        let job = WriteJob {
            room_id: d.room,
            user_id: who.user_id,
            username: who.username,
            content: d.content,
            client_msg_id: d.client_msg_id,
            extra,
            by_key,
            reply: Box::new(move |result| {
                if let Ok(m) = &result {
                    read_own(&reads, m);
                }
                reply(result);
            }),
        };
        // A full writer hands the job back; dropping it drops `reply` uncalled.
        self.writers.submit(job).map_err(|job| NotQueued {
            client_msg_id: job.client_msg_id,
        })
    }
}

/// The sender has read its own message: a quiet mark, gathered with the others.
fn read_own(reads: &Reads, m: &Message) {
    reads.mark(Mark {
        room: m.room_id,
        user: m.user_id,
        seq: m.seq,
        reply: None,
        quiet: true,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::config::MessagesConfig;
    use serde_json::json;

    fn draft(content: &str) -> Draft {
        Draft {
            room: Uuid::nil(),
            content: content.into(),
            client_msg_id: None,
            reply_to: None,
            attachments: None,
        }
    }

    fn rules(max_attachments: usize) -> Rules {
        Rules {
            max_attachments,
            ..Rules::from_config(&MessagesConfig::default())
        }
    }

    #[test]
    fn checks_content_key_and_attachments_against_the_configured_limit() {
        assert_eq!(
            check(draft(""), &rules(10)).unwrap_err().code(),
            "validation_failed"
        );
        let long = check(draft(&"x".repeat(65537)), &rules(10));
        assert_eq!(long.unwrap_err().code(), "message_too_long");
        let bad_key = Draft {
            client_msg_id: Some(String::new()),
            ..draft("hi")
        };
        assert_eq!(
            check(bad_key, &rules(10)).unwrap_err().code(),
            "invalid_payload"
        );
        let file =
            json!({"url": "https://x.example/a", "name": "a", "mime": "a/b", "size": 1, "more": 1});
        let two = Draft {
            attachments: Some(json!([file, file])),
            ..draft("hi")
        };
        let ok = check(two.clone(), &rules(2)).unwrap();
        assert!(ok.attachments.unwrap()[0].get("more").is_none());
        let refused = check(two, &rules(1)).unwrap_err();
        assert_eq!(
            (refused.code(), refused.message().as_str()),
            ("invalid_payload", "at most 1 attachments per message")
        );
        let null = Draft {
            attachments: Some(serde_json::Value::Null),
            ..draft("hi")
        };
        assert_eq!(check(null, &rules(0)).unwrap().attachments, None);
    }
}
