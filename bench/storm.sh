#!/usr/bin/env bash
# A reconnect storm at full size against a release node this script starts:
# `chat-bench storm` (10,000 receivers over 1,000 rooms, one sender per room; all drop
# at once, stay away while 100 messages a room pass, rejoin together with
# last_seen_seq), on a fresh database, with bench/storm.toml (limits off, cheap
# password hashing for the 10,000 registrations). Prints chat-bench's summary and the
# node's catch-up reads from its metrics (history pages read from the primary or,
# with STANDBY=1, from a standby).
#
#   bench/storm.sh [extra chat-bench storm options]
#
# STANDBY=1: a throwaway primary and a streaming standby of it (deploy/pg.sh with
# PGPORT=$STANDBY_PGPORT, default 5480; pg_basebackup), and the node's
# database.read_url pointing at the standby, so catch-up reads go there when it holds
# the range. Both servers' CPU counts in the postgres figure (every postgres process).
# Both are stopped at the end (their directories stay, under .local/).
#
# Environment: CHATD_BIN (target/release/chatd), CHAT_BENCH (target/release/chat-bench),
# TEST_PG_URL (postgres://postgres@127.0.0.1:5432; ignored with STANDBY=1), PORT (3931),
# METRICS_PORT (9531), OUT (a temp dir: JSON and logs).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${CHATD_BIN:-target/release/chatd}
bench=${CHAT_BENCH:-target/release/chat-bench}
port=${PORT:-3931}
mport=${METRICS_PORT:-9531}
out=${OUT:-$(mktemp -d /tmp/chatd-storm.XXXXXX)}
mkdir -p "$out"
# The node holds 10,000 sockets and chat-bench 11,000: each needs its own descriptors.
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge 12000 ] || { echo "storm.sh: ulimit -n is $(ulimit -n), 12000 or more needed" >&2; exit 3; }
for b in "$bin" "$bench"; do
    [ -x "$b" ] || { echo "storm.sh: $b missing (cargo build --release --workspace --bins)" >&2; exit 3; }
done

read_url=
if [ "${STANDBY:-0}" = 1 ]; then
    export PGPORT=${STANDBY_PGPORT:-5480}
    pg=$(deploy/pg.sh ensure)
    read_url=$(deploy/pg.sh standby "$pg")
    echo "storm.sh: primary $pg, standby $read_url"
else
    pg=${TEST_PG_URL:-postgres://postgres@127.0.0.1:5432}
fi
db=chatd_storm_$$
node=
cleanup() {
    if [ -n "$node" ] && kill -0 "$node" 2>/dev/null; then
        kill -TERM "$node"
        for _ in $(seq 1 100); do kill -0 "$node" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$node" 2>/dev/null || true
    fi
    psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    if [ -n "$read_url" ]; then
        deploy/pg.sh standby-stop "$pg" || true
        deploy/pg.sh stop || true
    fi
}
trap cleanup EXIT

# bench/storm.toml plus a metrics listener, to read the catch-up figures at the end.
cfg=$out/storm.toml
{ cat bench/storm.toml; printf '\n[metrics]\nlisten = "127.0.0.1:%s"\n' "$mport"; } >"$cfg"
psql -q "$pg/postgres" -c "CREATE DATABASE $db" >/dev/null
if [ -n "$read_url" ]; then
    # The standby replays the new database before the node reads from it.
    for _ in $(seq 1 100); do
        psql -qAt "$read_url/$db" -c 'select 1' >/dev/null 2>&1 && break
        sleep 0.1
    done
fi
DATABASE_URL=$pg/$db DATABASE_READ_URL=${read_url:+$read_url/$db} PORT=$port RUST_LOG=warn \
    JWT_ACCESS_SECRET=storm-access-secret-0123456789abcdefghij \
    JWT_REFRESH_SECRET=storm-refresh-secret-0123456789abcdefghi \
    "$bin" --config "$cfg" >"$out/node.log" 2>&1 &
node=$!
for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break
    kill -0 "$node" 2>/dev/null || { echo "storm.sh: chatd exited:" >&2; tail -20 "$out/node.log" >&2; exit 3; }
    sleep 0.1
done

metrics() { # metrics FILE: the counters the storm moves
    curl -sf "http://127.0.0.1:$mport/metrics" |
        grep -E '^chatd_(replica_(reads|fallbacks|errors)_total|history_cache_(hits|misses)_total|gap_fetches_total|slow_consumer_closes_total|connections_accepted_total) ' >"$1" || true
}
metrics "$out/metrics-before.txt"
code=0
"$bench" storm --url "127.0.0.1:$port" --server-pid "$node" --database-url "$pg/$db" \
    --json "$out/storm.json" "$@" 2>"$out/storm.log" | tee "$out/storm.txt" || code=$?
metrics "$out/metrics-after.txt"
echo "node counters over the run (after - before):"
join -a 2 -e 0 -o 0,1.2,2.2 "$out/metrics-before.txt" "$out/metrics-after.txt" |
    awk '{ printf "  %-40s %d\n", $1, $3 - $2 }'
kill -0 "$node" 2>/dev/null || { echo "storm.sh: chatd died: see $out/node.log" >&2; code=1; }
echo "storm.sh: exit $code; JSON, logs and config in $out"
exit "$code"
