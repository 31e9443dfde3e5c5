#!/usr/bin/env bash
# The server API's exports on a large room: MESSAGES (1,000,000) messages of one user in
# one room, seeded with SQL, then
#   1. GET /admin/rooms/:id/export read as fast as curl takes it,
#   2. the same read by a slow client (curl --limit-rate SLOW, 20M: bytes/s),
#   3. GET /admin/users/:id/export (the same messages, through the user's cursor),
# each with its time, size, MB/s and the node's peak RSS (VmHWM of /proc/PID/status)
# against the node's RSS before the first export (the baseline).
#
#   bench/export.sh
#
# Environment: CHATD_BIN (target/release/chatd), TEST_PG_URL
# (postgres://postgres@127.0.0.1:5432), MESSAGES, SLOW, KEEP=1 keeps the database.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${CHATD_BIN:-target/release/chatd}
pg=${TEST_PG_URL:-postgres://postgres@127.0.0.1:5432}
total=${MESSAGES:-1000000}
slow=${SLOW:-20M}
db=chatd_export_bench
port=${PORT:-3197}
key=bench-export-key-0123456789abcdef0123456789
out=$(mktemp -d /tmp/chatd-export.XXXXXX)
pid=

cleanup() {
    [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null || true
    if [[ ${KEEP:-0} != 1 ]]; then
        psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT
q() { psql -X -q -v ON_ERROR_STOP=1 "$pg/$db" -Atc "$1"; }
kib() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$pid/status"; }
api() { curl -sf -H "Authorization: Bearer $key" -H 'Content-Type: application/json' "$@"; }

psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
psql -q "$pg/postgres" -c "CREATE DATABASE $db" >/dev/null
sha=$(printf '%s' "$key" | sha256sum | cut -d' ' -f1)
{ cat chat.toml; printf '\n[[api_keys]]\nname = "bench"\nkey_sha256 = "%s"\n' "$sha"; } >"$out/server.toml"
CHATD_CONFIG=$out/server.toml DATABASE_URL=$pg/$db PORT=$port \
JWT_ACCESS_SECRET=bench-access-secret-0123456789abcdefgh \
JWT_REFRESH_SECRET=bench-refresh-secret-0123456789abcdefg \
RUST_LOG=warn "$bin" >"$out/node.log" 2>&1 &
pid=$!
base=http://127.0.0.1:$port
for _ in $(seq 100); do curl -sf "$base/ready" >/dev/null && break; sleep 0.1; done

user=$(api -X POST "$base/admin/users" -d '{"username":"exporter"}' | sed 's/.*"id":"\([^"]*\)".*/\1/')
room=$(api -X POST "$base/admin/rooms" -d "{\"name\":\"export-bench\",\"owner_id\":\"$user\"}" \
    | sed 's/^{"id":"\([^"]*\)".*/\1/')
echo "== seeding $total messages (user $user, room $room)"
t=$(date +%s.%N)
q "WITH s AS (UPDATE rooms SET last_seq = last_seq + $total WHERE id = '$room'
              RETURNING last_seq - $total AS base)
   INSERT INTO messages (room_id, seq, user_id, username, content)
   SELECT '$room', s.base + g, '$user', 'exporter',
          'message ' || g || ' of the export benchmark, about as long as a chat line'
   FROM s, generate_series(1, $total) g"
q "ANALYZE messages"
echo "seeded in $(echo "$(date +%s.%N) - $t" | bc) s"

# Warm the node with a small export (an empty room's), then the baseline.
small=$(api -X POST "$base/admin/rooms" -d "{\"name\":\"export-warm\",\"owner_id\":\"$user\"}" \
    | sed 's/^{"id":"\([^"]*\)".*/\1/')
api "$base/admin/rooms/$small/export" -o /dev/null
api "$base/health" >/dev/null
rss0=$(kib VmRSS)
echo "baseline: VmRSS $rss0 KiB, VmHWM $(kib VmHWM) KiB"

run() { # run LABEL PATH [curl options]
    local label=$1 path=$2
    shift 2
    local r
    r=$(api "$base$path" -o "$out/body" -w '%{size_download} %{time_total}' "$@")
    local bytes=${r% *} secs=${r#* }
    local lines
    lines=$(wc -l <"$out/body")
    printf '%-28s %10d lines %8.1f MB %7.2f s %7.1f MB/s  VmHWM %d KiB (baseline RSS %d KiB, +%d)\n' \
        "$label" "$lines" "$(echo "$bytes / 1000000" | bc -l)" "$secs" \
        "$(echo "$bytes / 1000000 / $secs" | bc -l)" "$(kib VmHWM)" "$rss0" "$(($(kib VmHWM) - rss0))"
    rm -f "$out/body"
}
run "room export, fast" "/admin/rooms/$room/export"
run "room export, $slow/s client" "/admin/rooms/$room/export" --limit-rate "$slow"
run "user export, fast" "/admin/users/$user/export"
echo "node VmRSS after: $(kib VmRSS) KiB"
