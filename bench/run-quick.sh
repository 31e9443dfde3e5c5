#!/usr/bin/env bash
# Runs every chat-bench scenario with --quick (a few seconds each, small sizes) and
# fails when any of them fails (a correctness counter not 0, or an incomplete run).
#
#   bench/run-quick.sh http://127.0.0.1:3000     against a running chatd
#   bench/run-quick.sh                           starts its own chatd from $CHATD_BIN
#                                                (default target/release/chatd) on a free
#                                                port, on a database of its own
#                                                ($TEST_PG_URL/chatd_benchquick_<pid>, dropped
#                                                at the end when psql is available)
#
# Environment:
#   CHAT_BENCH   chat-bench binary (default: built with cargo build --release -p chat-bench)
#   CHATD_BIN    chatd binary when the script starts the server
#   BENCH_CHATD_CONFIG  config file for that server (default loadtest/server.toml: the
#                per-client limits off; set it empty for a chatd that predates those keys)
#   TEST_PG_URL  PostgreSQL base URL without a database (postgres://postgres@127.0.0.1:5432)
#   CHATD_PID    pid of an already running server, to sample its CPU and memory
#   BENCH_DATABASE_URL  database of an already running server: each run then checks the
#                messages table against its acks (set automatically when the script
#                starts its own chatd)
#   BENCH_OUT    directory for the JSON and SVG of each scenario (default: a temp dir)
#   SCENARIOS    subset to run (default: all nine, soak last)
set -euo pipefail
cd "$(dirname "$0")/.."

bench=${CHAT_BENCH:-}
if [ -z "$bench" ]; then
    cargo build --release -p chat-bench
    bench=target/release/chat-bench
fi
out=${BENCH_OUT:-$(mktemp -d /tmp/chat-bench-quick.XXXXXX)}
mkdir -p "$out"
url=${1:-}
pid=${CHATD_PID:-}
dburl=${BENCH_DATABASE_URL:-}
server=

http_ok() { # http_ok PORT PATH: true when GET answers 200
    local line
    exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
    printf 'GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' "$2" >&3
    IFS= read -r -t 5 line <&3 || line=
    exec 3>&-
    [[ $line == *" 200 "* ]]
}

dbname=
stop_server() {
    if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then
        kill -TERM "$server"
        for _ in $(seq 1 100); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$server" 2>/dev/null || true
    fi
    if [ -n "$dbname" ] && command -v psql >/dev/null; then
        psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $dbname WITH (FORCE)" >/dev/null 2>&1 || true
    fi
}

if [ -z "$url" ]; then
    chatd=${CHATD_BIN:-target/release/chatd}
    if [ ! -x "$chatd" ]; then
        cargo build --release --bin chatd
        chatd=target/release/chatd
    fi
    pg=${TEST_PG_URL:-postgres://postgres@127.0.0.1:5432}
    loadcfg=${BENCH_CHATD_CONFIG-loadtest/server.toml}
    port=
    for _ in $(seq 1 50); do
        p=$((20000 + RANDOM % 20000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
    done
    [ -n "$port" ] || { echo "run-quick: no free port" >&2; exit 3; }
    # A database of its own (chatd creates it): a shared one may be migrated under us
    # by another chatd version.
    dbname=chatd_benchquick_$$
    dburl="$pg/$dbname"
    DATABASE_URL="$dburl" PORT=$port \
        JWT_ACCESS_SECRET=bench-quick-access-secret-0123456789abcdef \
        JWT_REFRESH_SECRET=bench-quick-refresh-secret-0123456789abcdef \
        RUST_LOG=warn "$chatd" ${loadcfg:+--config "$loadcfg"} >"$out/chatd.log" 2>&1 &
    server=$!
    pid=$server
    trap stop_server EXIT
    for _ in $(seq 1 300); do
        http_ok "$port" /ready 2>/dev/null && break
        kill -0 "$server" 2>/dev/null || { echo "run-quick: chatd exited:" >&2; tail -20 "$out/chatd.log" >&2; exit 3; }
        sleep 0.1
    done
    http_ok "$port" /ready || { echo "run-quick: chatd never became ready" >&2; exit 3; }
    url=127.0.0.1:$port
fi

failed=()
for s in ${SCENARIOS:-delivery throughput fanout connections churn reconnect storm typing soak}; do
    echo "=== $s ==="
    code=0
    "$bench" "$s" --quick --url "$url" ${pid:+--server-pid "$pid"} ${dburl:+--database-url "$dburl"} \
        --json "$out/$s.json" --plot "$out/$s.svg" 2>"$out/$s.log" || code=$?
    if [ "$code" -ne 0 ]; then
        failed+=("$s (exit $code)")
        tail -5 "$out/$s.log" >&2
    fi
done
if [ -n "$server" ] && ! kill -0 "$server" 2>/dev/null; then
    failed+=("chatd died: see $out/chatd.log")
fi
echo "results in $out"
if [ ${#failed[@]} -gt 0 ]; then
    echo "run-quick: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "run-quick: all scenarios passed"
