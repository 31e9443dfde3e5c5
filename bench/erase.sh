#!/usr/bin/env bash
# Does erasing a user stall sends in its rooms? A user with MESSAGES (100,000) messages
# spread over ROOMS (1,000) rooms, seeded with SQL; a sender, member of the same rooms,
# posts one message at a time round-robin over them (REST, one curl per send) for
# BEFORE seconds (10), then DELETE /admin/users/:id?erase=true, and goes on until the
# erasure is done. Send latency p50/p99/max before and during the erasure.
#
#   bench/erase.sh
#
# Environment: CHATD_BIN (target/release/chatd), TEST_PG_URL
# (postgres://postgres@127.0.0.1:5432), MESSAGES, ROOMS, BEFORE, ERASE_MAX (480 s: stop
# measuring then even if the erasure is not done), KEEP=1 keeps the database.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${CHATD_BIN:-target/release/chatd}
pg=${TEST_PG_URL:-postgres://postgres@127.0.0.1:5432}
total=${MESSAGES:-100000}
rooms=${ROOMS:-1000}
before=${BEFORE:-10}
per_room=$((total / rooms))
db=chatd_erase_bench
port=${PORT:-3198}
key=bench-erase-key-0123456789abcdef0123456789
out=$(mktemp -d /tmp/chatd-erase.XXXXXX)
pid=
sender=

cleanup() {
    [[ -n $sender ]] && kill "$sender" 2>/dev/null || true
    [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null || true
    if [[ ${KEEP:-0} != 1 ]]; then
        psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT
q() { psql -X -q -v ON_ERROR_STOP=1 "$pg/$db" -Atc "$1"; }
api() { curl -sf -H "Authorization: Bearer $key" -H 'Content-Type: application/json' "$@"; }
id_of() { sed 's/^{"id":"\([^"]*\)".*/\1/'; }

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

gone=$(api -X POST "$base/admin/users" -d '{"username":"erased"}' | id_of)
them=$(api -X POST "$base/admin/users" -d '{"username":"sender"}' | id_of)
token=$(api -X POST "$base/admin/users/$them/tokens" | sed 's/.*"accessToken":"\([^"]*\)".*/\1/')
echo "== seeding $rooms rooms, $total messages of the erased user ($per_room a room)"
q "INSERT INTO rooms (id, name, last_seq, created_by)
   SELECT gen_random_uuid(), 'erase-' || i, $per_room, '$them' FROM generate_series(1, $rooms) i"
q "INSERT INTO room_members (room_id, user_id, role)
   SELECT id, '$them'::uuid, 'owner' FROM rooms UNION ALL SELECT id, '$gone'::uuid, 'member' FROM rooms"
q "UPDATE rooms SET member_count = 2" 2>/dev/null || true
q "INSERT INTO messages (room_id, seq, user_id, username, content)
   SELECT r.id, s, '$gone', 'erased', 'message ' || s || ' soon to be erased'
   FROM rooms r, generate_series(1, $per_room) s"
q "ANALYZE"
mapfile -t ids < <(q "SELECT id FROM rooms ORDER BY id")

# The sender: one send at a time, round-robin; each line "<phase> <seconds>".
echo before >"$out/phase"
(
    i=0
    while :; do
        room=${ids[$((i % ${#ids[@]}))]}
        t=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' -H "Authorization: Bearer $token" \
            -H 'Content-Type: application/json' -d '{"content":"still here"}' "$base/rooms/$room/messages")
        echo "$(cat "$out/phase") $t" >>"$out/lat"
        i=$((i + 1))
    done
) &
sender=$!
sleep "$before"
echo during >"$out/phase"
t0=$(date +%s.%N)
api -X DELETE "$base/admin/users/$gone?erase=true" >/dev/null
# Until the account is gone, or ERASE_MAX seconds (480): the figures are reported either way.
limit=$(( $(date +%s) + ${ERASE_MAX:-480} ))
while [[ $(q "SELECT count(*) FROM users WHERE id = '$gone'") != 0 && $(date +%s) -lt $limit ]]; do
    sleep 1
done
erase_s=$(echo "$(date +%s.%N) - $t0" | bc)
# Messages only: each deletion also appends a `message_deleted` entry, which carries a
# deleted_at too (counting it doubled the figure).
echo "erased so far: $(q "SELECT count(*) FROM messages WHERE user_id = '$gone' AND kind = 'message'
                          AND deleted_at IS NOT NULL") messages"
kill "$sender"
# The sender only: a bare `wait` also waits for the server, which never exits.
wait "$sender" 2>/dev/null || true
sender=
echo "measured during the erasure of $total messages in $rooms rooms: $erase_s s"
for phase in before during; do
    awk -v p=$phase '$1 == p {print $3 * 1000, $2}' "$out/lat" | sort -n | awk -v p=$phase '
        {ms[NR] = $1; if ($2 != 201) bad++}
        END {
            i50 = int(NR * 0.50); i99 = int(NR * 0.99); if (i50 < 1) i50 = 1; if (i99 < 1) i99 = 1
            printf "%-7s %6d sends  p50 %7.1f ms  p99 %7.1f ms  max %7.1f ms  not 201: %d\n",
                p, NR, ms[i50], ms[i99], ms[NR], bad
        }'
done
