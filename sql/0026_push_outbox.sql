-- Web Push at least once: each push to make is a row, written in the transaction that
-- takes its notification out of `push_pending` (so a node that dies after that commit
-- loses nothing), and deleted once the push service accepted it (2xx), the
-- subscription is gone, or the push is older than `push.max_age_hours`. Any node's
-- senders take rows: a subscription is claimed for a while (`busy_until`) by the node
-- that sends to it, so one request at most is in flight per subscription, and the claim
-- of a node that died runs out by itself.
CREATE TABLE push_outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscription_id bigint NOT NULL REFERENCES push_subscriptions (id) ON DELETE CASCADE,
    payload         text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- When the next attempt may be made (later after each failure: backoff, Retry-After).
    next_at         timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0
);
CREATE INDEX push_outbox_next_idx ON push_outbox (next_at);
CREATE INDEX push_outbox_subscription_idx ON push_outbox (subscription_id, id);

-- Until when a node's sender holds the subscription (null or past: free).
ALTER TABLE push_subscriptions ADD COLUMN busy_until timestamptz;
