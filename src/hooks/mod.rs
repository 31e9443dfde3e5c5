//! Webhooks: events out to the operator's endpoints (`[[webhooks]]`), signed as the
//! Standard Webhooks specification says, at least once and in seq order per room and
//! endpoint.
//!
//! Room events are the entries of each room's durable stream: a dispatcher per endpoint
//! follows every room's stream from a cursor (`webhook_cursors`), as the search indexer
//! does, so the send path writes nothing for webhooks. Other events (users, and room
//! changes that are not entries) come from `webhook_outbox`, written by the domain in
//! the transaction that makes them (`pg/outbox.rs`). One node at a time works for an
//! endpoint (a session advisory lock on the dispatcher's own connection: a node that
//! dies or loses PostgreSQL lets another take over at once); each endpoint has its own
//! threads, so a dead or slow endpoint delays no other, and within an endpoint a room
//! waiting for a retry delays no other room.
//!
//! Offline notifications (`notifier`) follow the rooms' streams the same way and go
//! out by Web Push (`webpush`, to the users' `subscriptions`, through the push outbox
//! that every node's `pusher` works off, at least once) and as the
//! `notification.offline` event through the outbox.
//!
//! Sits beside `auth/` and `chat/` in the domain layer: it imports `base/` and `pg/`
//! only; the dead-letter routes in `http/` call [`dead`].

pub mod dead;
pub mod dispatch;
pub mod event;
pub mod notifier;
pub mod pusher;
pub mod send;
pub mod subscriptions;
pub mod webpush;
