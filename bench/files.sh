#!/usr/bin/env bash
# Uploads and downloads of one large file through one node (curl, which sends
# `Expect: 100-continue` for such bodies): SIZE_MB (25) random bytes uploaded three
# times and downloaded three times, the download compared with the upload, and the
# node's resident memory (VmRSS, and its peak VmHWM) before and after: uploads are
# streamed to PostgreSQL, so the peak grows by far less than one file.
#
#   bench/files.sh
#   LOAD=1 bench/files.sh
#
# LOAD=1 measures uploads beside the reference shape instead: WAL and table bytes per
# GiB stored (pg_current_wal_lsn around CONCURRENT uploads of SIZE_MB, nothing else
# running), then `chat-bench delivery` as bench/pair.sh runs it (120 senders x 80
# messages every 80 ms, 300 receivers) alone and again while CONCURRENT (8) clients
# upload SIZE_MB files in a loop, printing both runs' p50/p99 and the node's RSS.
#
# Environment: CHATD_BIN (target/release/chatd), CHAT_BENCH
# (target/release/chat-bench), TEST_PG_URL (postgres://postgres@127.0.0.1:5432),
# SIZE_MB, PORT (3917), LOAD, CONCURRENT, UPLOAD_BYTES_PER_SEC (files.upload_bytes_per_sec;
# the default when unset).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PG=${TEST_PG_URL:-postgres://postgres@127.0.0.1:5432}
BIN=${CHATD_BIN:-target/release/chatd}
SIZE_MB=${SIZE_MB:-25}
PORT=${PORT:-3917}
DB=chatd_files_bench_$$
TMP=$(mktemp -d)
psql "$PG/postgres" -qc "CREATE DATABASE $DB"
# The load-test settings (abuse limits off, as pair.sh runs the reference shape) with
# the upload quotas and rate off: the bench uploads more than a user may keep.
cat loadtest/server.toml - >"$TMP/server.toml" <<'TOML'

[files]
user_quota_bytes = 0
room_quota_bytes = 0
uploads_per_minute = 0
TOML
if [ -n "${UPLOAD_BYTES_PER_SEC:-}" ]; then
  echo "upload_bytes_per_sec = $UPLOAD_BYTES_PER_SEC" >>"$TMP/server.toml"
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
CHATD_CONFIG=$TMP/server.toml DATABASE_URL=$PG/$DB PORT=$PORT "$BIN" >"$TMP/node.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; psql "$PG/postgres" -qc "DROP DATABASE $DB WITH (FORCE)"; rm -rf "$TMP"' EXIT
for _ in $(seq 100); do curl -sf "localhost:$PORT/ready" >/dev/null && break; sleep 0.1; done
json() { python3 -c "import sys,json;print(json.load(sys.stdin)$1)"; }
U=u$RANDOM$RANDOM
TOK=$(curl -sf "localhost:$PORT/auth/register" -H 'content-type: application/json' \
  -d "{\"username\":\"$U\",\"email\":\"$U@example.com\",\"password\":\"password123\"}" | json '["tokens"]["accessToken"]')
ROOM=$(curl -sf "localhost:$PORT/rooms" -H "authorization: Bearer $TOK" -H 'content-type: application/json' \
  -d "{\"name\":\"bench-$U\"}" | json '["id"]')
head -c $((SIZE_MB * 1024 * 1024)) /dev/urandom >"$TMP/file"
rss() { awk '/VmRSS|VmHWM/{printf "%s %s kB  ", $1, $2}' "/proc/$PID/status"; echo; }
if [ -n "${LOAD:-}" ]; then
  BENCH=${CHAT_BENCH:-target/release/chat-bench}
  N=${CONCURRENT:-8}
  sql() { psql -Atq "$PG/$DB" -c "$1"; }
  figures() {
    python3 - "$1" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
lat = r["histograms"].get("latency", {})
ms = lambda us: "%.1f" % (us / 1000.0) if us else "-"
print("exit=%s delivered/s=%.0f p50=%s p99=%s ms" % (r["exit_code"],
    r["rates"].get("delivered_per_s") or 0, ms(lat.get("p50_us")), ms(lat.get("p99_us"))))
EOF
  }
  up() { curl -s -o /dev/null -w "%{http_code}\n" -H "authorization: Bearer $TOK" \
    --data-binary @"$TMP/file" "localhost:$PORT/rooms/$ROOM/files?name=l.bin"; }
  echo "rss at start: $(rss)"
  L0=$(sql "SELECT pg_current_wal_lsn()")
  pids=()
  for _ in $(seq "$N"); do up >>"$TMP/once" & pids+=($!); done
  wait "${pids[@]}"
  L1=$(sql "SELECT pg_current_wal_lsn()")
  STORED=$(sql "SELECT sum(size) FROM files")
  echo "$N uploads of $SIZE_MB MiB: $(sort "$TMP/once" | uniq -c | tr '\n' ' ')"
  python3 - "$(sql "SELECT pg_wal_lsn_diff('$L1', '$L0')")" "$STORED" \
    "$(sql "SELECT pg_total_relation_size('file_chunks')")" <<'EOF'
import sys
wal, stored, table = map(float, sys.argv[1:])
gib = stored / 2**30
print("stored %.3f GiB: WAL %.3f GiB per GiB stored, file_chunks %.3f GiB per GiB stored" % (
    gib, wal / 2**30 / gib, table / 2**30 / gib))
EOF
  echo "rss after the uploads: $(rss)"
  delivery() { "$BENCH" delivery --senders 120 --messages 80 --interval-ms 80 --receivers 300 \
    --url "127.0.0.1:$PORT" --server-pid "$PID" --json "$1" >"$1.txt" 2>&1 || true; figures "$1"; }
  echo "delivery alone:        $(delivery "$TMP/alone.json")"
  echo "rss: $(rss)"
  touch "$TMP/go"
  pids=()
  for _ in $(seq "$N"); do (while [ -e "$TMP/go" ]; do up >>"$TMP/loop"; done) & pids+=($!); done
  sleep 1
  echo "delivery with uploads: $(delivery "$TMP/loaded.json")"
  rm "$TMP/go"
  wait "${pids[@]}"
  echo "uploads during it: $(sort "$TMP/loop" | uniq -c | tr '\n' ' ')"
  echo "rss at the end: $(rss)"
  exit 0
fi
echo "before: $(rss)"
for _ in 1 2 3; do
  curl -s -o "$TMP/up" -w "upload   %{http_code} %{time_total}s %{speed_upload} B/s\n" \
    -H "authorization: Bearer $TOK" --data-binary @"$TMP/file" "localhost:$PORT/rooms/$ROOM/files?name=r.bin"
done
ID=$(json '["id"]' <"$TMP/up")
for _ in 1 2 3; do
  curl -s -o "$TMP/down" -w "download %{http_code} %{time_total}s %{speed_download} B/s\n" \
    -H "authorization: Bearer $TOK" "localhost:$PORT/files/$ID"
done
cmp "$TMP/file" "$TMP/down" && echo "downloaded bytes identical"
echo "after:  $(rss)"
