#!/usr/bin/env bash
# Search latency on a large table: MESSAGES (1 M) messages over ROOMS (1,000) rooms, one
# user a member of every room (the messages are another user's, all unread: every room
# counts its unread up to the cap), each message 8 words drawn from 1,000 with a skewed
# distribution (word k is about k^(2/3) times rarer than word 0), indexed as the indexer
# leaves them. wrk measures `GET /rooms/:id/search` and `GET /me/search` for a common, a
# middling and a rare word, one connection, then four; and `GET /me/rooms` (first page
# of the member's 1,000 rooms, unread counts included) the same way. RESTRICTIONS (0)
# mutes other users in the rooms (as many users as it takes, each muted in every room):
# a server where moderators have muted people, which `GET /me/rooms` must not pay for.
#
#   bench/search.sh
#
# Environment: CHATD_BIN (target/release/chatd), TEST_PG_URL
# (postgres://postgres@127.0.0.1:5432), MESSAGES, ROOMS, RESTRICTIONS, PORT (3480), KEEP=1
# keeps the database afterwards.
set -euo pipefail
# wrk measures the routes: stop at once, saying what to install, rather than halfway.
command -v wrk >/dev/null || { echo "search.sh: wrk is missing (apt-get install wrk)" >&2; exit 1; }
cd "$(dirname "$0")/.."
bin=${CHATD_BIN:-target/release/chatd}
pg=${TEST_PG_URL:-postgres://postgres@127.0.0.1:5432}
total=${MESSAGES:-1000000}
rooms=${ROOMS:-1000}
restrictions=${RESTRICTIONS:-0}
port=${PORT:-3480}
db=chatd_search_bench
pid=
cleanup() {
    [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null || true
    [[ ${KEEP:-0} == 1 ]] || psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
q() { psql -X -q -v ON_ERROR_STOP=1 "$pg/$db" -Atc "$1"; }

psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
CHATD_CONFIG=loadtest/server.toml DATABASE_URL=$pg/$db PORT=$port RUST_LOG=warn \
    JWT_ACCESS_SECRET=search-access-secret-0123456789abcdefghi \
    JWT_REFRESH_SECRET=search-refresh-secret-0123456789abcdefgh \
    "$bin" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 150); do curl -sf "http://127.0.0.1:$port/ready" >/dev/null && break; sleep 0.1; done
token=$(curl -s "http://127.0.0.1:$port/auth/register" -H 'content-type: application/json' \
    -d '{"username":"searcher","email":"searcher@example.com","password":"password123"}' |
    sed -E 's/.*"accessToken":"([^"]+)".*/\1/')
uid=$(q "SELECT id FROM users WHERE username = 'searcher'")
per_room=$((total / rooms))
t=$(date +%s.%N)
q "INSERT INTO rooms (id, name, last_seq) SELECT gen_random_uuid(), 'search-' || i, $per_room FROM generate_series(1, $rooms) i;
   INSERT INTO room_members (room_id, user_id) SELECT id, '$uid' FROM rooms;
   INSERT INTO messages (room_id, seq, user_id, username, content)
   SELECT r.id, s, '00000000-0000-0000-0000-000000000001', 'poster',
          (SELECT string_agg('w' || floor(1000 * power(random(), 3))::int, ' ')
           FROM generate_series(1, 8) WHERE s > 0)
   FROM rooms r, generate_series(1, $per_room) s;
   INSERT INTO message_search (room_id, message_id, search)
   SELECT room_id, id, to_tsvector('simple', content) FROM messages;
   INSERT INTO search_progress SELECT id, last_seq FROM rooms"
q "VACUUM ANALYZE messages; " >/dev/null
q "VACUUM ANALYZE message_search" >/dev/null
echo "loaded $total messages in $(echo "$(date +%s.%N) - $t" | bc) s; search index $(q "SELECT pg_size_pretty(pg_total_relation_size('message_search'))")"
if ((restrictions > 0)); then
    q "INSERT INTO users (id, username, username_key)
       SELECT gen_random_uuid(), 'mutee' || i, 'mutee' || i
       FROM generate_series(1, ($restrictions + $rooms - 1) / $rooms) i;
       INSERT INTO room_restrictions (room_id, user_id, muted)
       SELECT r.id, u.id, true FROM rooms r, users u WHERE u.username LIKE 'mutee%'
       LIMIT $restrictions;
       ANALYZE room_restrictions"
    # With the statistics a server's autovacuum keeps (it is off on this machine):
    # without them the planner takes the member for a member of a few rooms.
    q "ANALYZE room_members"
fi
# Fresh activity: every room's newest message is recent, in random order.
q "UPDATE rooms SET last_activity_at = now() - random() * interval '1 hour'"
q "VACUUM ANALYZE rooms" >/dev/null
wrk_line() {
    wrk -t1 -c"$1" -d5s --latency -H "Authorization: Bearer $token" "http://127.0.0.1:$port$2" |
        awk '/Requests\/sec/ { rps = $2 } / 50%/ { p50 = $2 } / 99%/ { p99 = $2 } END { printf "req/s %s p50 %s p99 %s\n", rps, p50, p99 }'
}
for c in 1 4; do
    printf '%-36s c=%s ' "/me/rooms (member of $rooms rooms)" "$c"
    wrk_line "$c" "/me/rooms?limit=50"
done
room=$(q "SELECT id FROM rooms LIMIT 1")
for word in w0 w30 w900; do
    n=$(q "SELECT count(*) FROM message_search WHERE search @@ plainto_tsquery('simple', '$word')")
    for path in "/rooms/$room/search?q=$word&limit=20" "/me/search?q=$word&limit=20"; do
        for c in 1 4; do
            printf '%-5s matches %-7s %-14s c=%s ' "$word" "$n" "${path%%\?*}" "$c" | sed "s|/rooms/[^/]*/|/rooms/:id/|"
            wrk_line "$c" "$path"
        done
    done
done
