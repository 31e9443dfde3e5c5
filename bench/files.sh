#!/usr/bin/env bash
# Uploads and downloads of one large file through one node (curl, which sends
# `Expect: 100-continue` for such bodies): SIZE_MB (25) random bytes uploaded three
# times and downloaded three times, the download compared with the upload, and the
# node's resident memory (VmRSS, and its peak VmHWM) before and after: uploads are
# streamed to PostgreSQL, so the peak grows by far less than one file.
#
#   bench/files.sh
#
# Environment: CHATD_BIN (target/release/chatd), TEST_PG_URL
# (postgres://postgres@127.0.0.1:5432), SIZE_MB, PORT (3917).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PG=${TEST_PG_URL:-postgres://postgres@127.0.0.1:5432}
BIN=${CHATD_BIN:-target/release/chatd}
SIZE_MB=${SIZE_MB:-25}
PORT=${PORT:-3917}
DB=chatd_files_bench_$$
TMP=$(mktemp -d)
psql "$PG/postgres" -qc "CREATE DATABASE $DB"
DATABASE_URL=$PG/$DB PORT=$PORT "$BIN" >"$TMP/node.log" 2>&1 &
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
