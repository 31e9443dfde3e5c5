#!/usr/bin/env bash
# The cost of retention on a large table, two ways:
#   A. chatd's deleter (batched DELETEs of each room's expired prefix) on the real
#      schema, then the VACUUM that reclaims the space;
#   B. the alternative of a messages table partitioned by day, where expiry drops
#      partitions.
# Both start from MESSAGES rows (10 M) in ROOMS rooms (1,000) spread evenly over 100
# days; EXPIRE_DAYS (10) of them expire (a tenth of the rows).
#
#   bench/retention.sh
#
# Environment: CHATD_BIN (target/release/chatd), TEST_PG_URL
# (postgres://postgres@127.0.0.1:5432), MESSAGES, ROOMS, EXPIRE_DAYS, BATCH (1000,
# retention.batch_size), KEEP=1 keeps the two databases afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${CHATD_BIN:-target/release/chatd}
pg=${TEST_PG_URL:-postgres://postgres@127.0.0.1:5432}
total=${MESSAGES:-10000000}
rooms=${ROOMS:-1000}
expire=${EXPIRE_DAYS:-10}
batch=${BATCH:-1000}
per_room=$((total / rooms))
db=chatd_retention_a
dbp=chatd_retention_b
out=$(mktemp -d /tmp/chatd-retention.XXXXXX)
pid=

cleanup() {
    [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null || true
    if [[ ${KEEP:-0} != 1 ]]; then
        for d in $db $dbp; do psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true; done
    fi
}
trap cleanup EXIT
q() { psql -X -q -v ON_ERROR_STOP=1 "$1" -Atc "$2"; }
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }
lsn() { q "$pg/postgres" "SELECT pg_current_wal_lsn()"; }
wal_mb() { q "$pg/postgres" "SELECT round(pg_wal_lsn_diff('$2', '$1') / 1048576.0, 1)"; }

# Rows: room r, seqs 1..per_room, created evenly over the last 100 days (oldest first),
# content like a short chat line.
fill() { # fill DB TABLE
    q "$pg/$1" "INSERT INTO $2 (room_id, seq, user_id, username, content, created_at)
        SELECT r.id, s, '00000000-0000-0000-0000-000000000001', 'loader',
               'message ' || s || ' in a room about things', now() - interval '100 days'
               + (s - 1) * (interval '100 days' / $per_room)
        FROM rooms r, generate_series(1, $per_room) s"
}

echo "== A. chatd's deleter on $total messages in $rooms rooms (batch $batch)"
psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
q "$pg/postgres" "CREATE DATABASE $db"
DATABASE_URL=$pg/$db "$bin" migrate >"$out/migrate.log" 2>&1
q "$pg/$db" "INSERT INTO rooms (id, name, last_seq)
    SELECT gen_random_uuid(), 'room-' || i, $per_room FROM generate_series(1, $rooms) i"
t=$(now)
# Bulk load without the secondary indexes, then build them (far faster than row by row).
q "$pg/$db" "DROP INDEX messages_client_msg_idx"
fill $db messages
# The search index as the indexer leaves it: every message in message_search.
q "$pg/$db" "CREATE UNIQUE INDEX messages_client_msg_idx ON messages (room_id, user_id, client_msg_id)
    WHERE client_msg_id IS NOT NULL;
    DROP INDEX message_search_idx;
    INSERT INTO message_search (room_id, message_id, search)
        SELECT room_id, id, to_tsvector('simple', content) FROM messages;
    INSERT INTO search_progress SELECT id, last_seq FROM rooms;
    CREATE INDEX message_search_idx ON message_search USING gin (search)"
q "$pg/$db" "VACUUM ANALYZE messages"
q "$pg/$db" "VACUUM ANALYZE message_search"
echo "loaded in $(since "$t") s; messages with indexes: $(q "$pg/$db" "SELECT pg_size_pretty(pg_total_relation_size('messages'))"), search index: $(q "$pg/$db" "SELECT pg_size_pretty(pg_total_relation_size('message_search'))")"

cfg=$out/retention.toml
printf '[retention]\nmax_age_days = %s\ninterval_secs = 1\npause_ms = 0\nbatch_size = %s\n' \
    $((100 - expire)) "$batch" >"$cfg"
w0=$(lsn)
t=$(now)
CHATD_CONFIG=$cfg DATABASE_URL=$pg/$db PORT=3990 RUST_LOG=info \
    JWT_ACCESS_SECRET=retention-access-secret-0123456789abcdefgh \
    JWT_REFRESH_SECRET=retention-refresh-secret-0123456789abcdefg \
    "$bin" >"$out/chatd.log" 2>&1 &
pid=$!
expected=$(q "$pg/$db" "SELECT count(*) FROM messages WHERE created_at < now() - interval '$((100 - expire)) days'")
while :; do
    left=$(q "$pg/$db" "SELECT count(*) FROM rooms WHERE first_seq = 1")
    [[ $left == 0 ]] && break
    sleep 1
done
# The pass is done when no room still starts at seq 1 and the deleter logged its total.
for _ in $(seq 1 60); do grep -q "retention: deleted" "$out/chatd.log" && break; sleep 1; done
secs=$(since "$t")
kill -TERM $pid; wait $pid 2>/dev/null || true; pid=
w1=$(lsn)
deleted=$(grep -o "deleted [0-9]* expired messages in [0-9.]* s" "$out/chatd.log" | awk '{ n += $2; s += $6 } END { print n + 0, s + 0 }')
read -r n busy <<<"$deleted"
echo "deleted $n of $expected expired rows in passes taking $busy s ($(echo "$n / $busy" | bc) rows/s; $secs s from start-up), WAL $(wal_mb "$w0" "$w1") MB (the whole cluster's)"
t=$(now); w0=$(lsn)
q "$pg/$db" "VACUUM messages"
q "$pg/$db" "VACUUM message_search"
echo "VACUUM messages and message_search afterwards: $(since "$t") s, WAL $(wal_mb "$w0" "$(lsn)") MB"

echo "== B. the same rows in a table partitioned by day; expiry drops partitions"
psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $dbp WITH (FORCE)" >/dev/null 2>&1
q "$pg/postgres" "CREATE DATABASE $dbp"
q "$pg/$dbp" "CREATE TABLE rooms (id uuid PRIMARY KEY, name text);
    INSERT INTO rooms SELECT gen_random_uuid(), 'room-' || i FROM generate_series(1, $rooms) i;
    -- Every unique key of a partitioned table must include the partition key: (room_id,
    -- seq) alone can no longer be declared unique.
    CREATE TABLE messages (id bigint GENERATED ALWAYS AS IDENTITY, room_id uuid NOT NULL,
        seq bigint NOT NULL, user_id uuid NOT NULL, username text NOT NULL, content text NOT NULL,
        client_msg_id text, created_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (room_id, seq, created_at)) PARTITION BY RANGE (created_at)"
q "$pg/$dbp" "DO \$\$ BEGIN FOR d IN 0..100 LOOP
    EXECUTE format('CREATE TABLE messages_d%s PARTITION OF messages FOR VALUES FROM (%L) TO (%L)', d,
        date_trunc('day', now()) - make_interval(days => 100 - d),
        date_trunc('day', now()) - make_interval(days => 99 - d));
    END LOOP; END \$\$;
    CREATE TABLE messages_rest PARTITION OF messages DEFAULT"
t=$(now)
fill $dbp messages
echo "loaded in $(since "$t") s"
drop_days=$expire
t=$(now); w0=$(lsn)
gone=0
for d in $(seq 0 $((drop_days - 1))); do
    n=$(q "$pg/$dbp" "SELECT count(*) FROM messages_d$d")
    q "$pg/$dbp" "ALTER TABLE messages DETACH PARTITION messages_d$d; DROP TABLE messages_d$d"
    gone=$((gone + n))
done
secs=$(since "$t")
echo "dropped $drop_days daily partitions ($gone rows) in $secs s, WAL $(wal_mb "$w0" "$(lsn)") MB"
echo "logs in $out"
