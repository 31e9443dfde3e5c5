-- Message notifications by room shard: `notify_shards` channels (chat_messages_<n>),
-- the same on every node (a node starting with another count while others run is
-- refused). 1 means the single channel chat_messages of earlier versions.
INSERT INTO settings VALUES ('notify_shards', '1') ON CONFLICT (key) DO NOTHING;
