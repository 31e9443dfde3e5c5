#!/usr/bin/env bash
# run.sh - one k6 run against a fresh chatd node, and what it cost:
#
#   loadtest/run.sh SCRIPT [k6 args...]      e.g. SENDERS=40 RECEIVERS=100 loadtest/run.sh k6-message-delivery.js
#
# Creates a database, starts target/release/chatd on it ($CHATD_BIN overrides) with
# loadtest/server.toml (NODE_CONFIG=default: no config file, every default limit on;
# NODE_CONFIG=path: that file), runs `k6 run loadtest/SCRIPT` against it, then stops the
# node and drops the database. Prints k6's CPU-seconds (user + system, from
# /usr/bin/time), the node's CPU-seconds over the run (from /proc), and k6's exit code,
# which is also this script's. The knobs of the scripts (SENDERS, P95_MS, ...) pass
# through the environment; NODE_SQL, when set, is run on the node's database before k6
# starts; NODE_PORT (3170) is the node's port. On a shared machine run it under the
# benchmark lock.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
script=${1:?usage: loadtest/run.sh SCRIPT [k6 args...]}
shift
bin=${CHATD_BIN:-$ROOT/target/release/chatd}
pg=${TEST_PG_URL:-postgres://postgres@127.0.0.1:5432}
port=${NODE_PORT:-3170}
db=chatd_k6run_$$
log() { echo "run.sh: $*" >&2; }

case ${NODE_CONFIG:-loadtest} in
    loadtest) config=(--config "$ROOT/loadtest/server.toml") ;;
    default) config=() ;;
    *) config=(--config "$NODE_CONFIG") ;;
esac

node=
cleanup() {
    if [[ -n $node ]]; then kill -TERM "$node" 2>/dev/null; wait "$node" 2>/dev/null; fi
    psql "$pg/postgres" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
}
trap cleanup EXIT

# Each VU holds a socket on both sides.
ulimit -n 20000 2>/dev/null || true
DATABASE_URL=$pg/$db PORT=$port RUST_LOG=${RUST_LOG:-warn} CHATD_NODE_ID=k6run \
JWT_ACCESS_SECRET=k6-run-access-secret-0123456789abcdefgh \
JWT_REFRESH_SECRET=k6-run-refresh-secret-0123456789abcdefg \
    "$bin" "${config[@]}" &
node=$!
for _ in $(seq 200); do
    curl -sf "http://127.0.0.1:$port/ready" >/dev/null && break
    kill -0 "$node" 2>/dev/null || { log "chatd exited at start-up"; exit 3; }
    sleep 0.1
done
log "chatd pid $node on 127.0.0.1:$port (database $db, config ${NODE_CONFIG:-loadtest})"
# NODE_SQL: statements run on the node's database before k6 starts (to break the node on purpose).
if [[ -n ${NODE_SQL:-} ]]; then
    psql "$pg/$db" -qAtc "$NODE_SQL" >/dev/null || { log "NODE_SQL failed"; exit 3; }
fi

# utime + stime of a process, in clock ticks (fields 14 and 15 of /proc/PID/stat).
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
before=$(ticks "$node")
timing=$(mktemp)
BASE_URL=http://127.0.0.1:$port WS_URL=ws://127.0.0.1:$port/ws \
    /usr/bin/time -f '%U %S %e' -o "$timing" k6 run "$@" "$ROOT/loadtest/$script"
code=$?
after=$(ticks "$node")
read -r user sys wall < <(tail -n 1 "$timing")
rm -f "$timing"
awk -v u="$user" -v s="$sys" -v w="$wall" -v b="$before" -v a="$after" -v hz="$hz" -v c="$code" 'BEGIN {
    printf "run.sh: k6 %.2f CPU-s (user %.2f, sys %.2f) in %.1f s; chatd %.2f CPU-s; k6 exit code %d\n",
        u + s, u, s, w, (a - b) / hz, c }' >&2
exit "$code"
