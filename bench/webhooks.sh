#!/usr/bin/env bash
# Webhooks on the send path: durable throughput with no webhook and with one endpoint
# subscribed to message.created (a fast receiver on loopback, bench/src/bin/webhook-sink.rs),
# closed loop; then the webhook lag (entry commit to arrival at the receiver) at a fixed
# open-loop rate. Every run starts a fresh node on a fresh database.
#
#   heavy bench/webhooks.sh
#
# Environment: CHATD_BIN (target/release/chatd), BENCH_BIN (target/release/chat-bench),
# SINK_BIN (target/release/webhook-sink), TEST_PG_URL (postgres://postgres@127.0.0.1:5432),
# DURATION (20 s per run), RATE (10000 msgs/s for the lag run), CONCURRENCY (32: the
# endpoint's requests in flight), PORT (3495), SINK_PORT (3496); LAG_ONLY=1 runs only the
# open-loop run with the webhook.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${CHATD_BIN:-target/release/chatd}
bench=${BENCH_BIN:-target/release/chat-bench}
sink=${SINK_BIN:-target/release/webhook-sink}
pg=${TEST_PG_URL:-postgres://postgres@127.0.0.1:5432}
dur=${DURATION:-20}
rate=${RATE:-10000}
port=${PORT:-3495}
sink_port=${SINK_PORT:-3496}
db=chatd_webhooks_bench
work=$(mktemp -d)
pid= spid=
cleanup() {
    [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null || true
    [[ -n $spid ]] && kill -TERM "$spid" 2>/dev/null || true
    psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# run NAME HOOK(0|1) ARGS...: a fresh database and node, chat-bench throughput ARGS.
run() {
    local name=$1 hook=$2
    shift 2
    psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
    cp loadtest/server.toml "$work/chatd.toml"
    if [[ $hook == 1 ]]; then
        "$sink" "$sink_port" 5 >"$work/sink.out" &
        spid=$!
        cat >>"$work/chatd.toml" <<TOML

[[webhooks]]
name = "bench"
url = "http://127.0.0.1:$sink_port/hook"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
events = ["message.created"]
concurrency = ${CONCURRENCY:-32}
TOML
    fi
    CHATD_CONFIG=$work/chatd.toml DATABASE_URL=$pg/$db PORT=$port RUST_LOG=warn \
        JWT_ACCESS_SECRET=webhooks-access-secret-0123456789abcdefghi \
        JWT_REFRESH_SECRET=webhooks-refresh-secret-0123456789abcdefgh \
        "$bin" >/dev/null 2>"$work/chatd.err" &
    pid=$!
    for _ in $(seq 1 150); do curl -sf "http://127.0.0.1:$port/ready" >/dev/null && break; sleep 0.1; done
    "$bench" throughput --rooms 100 --senders 100 --receivers 100 --duration "$dur" \
        --url "127.0.0.1:$port" --server-pid "$pid" "$@" >"$work/bench.out" 2>&1 || {
        cat "$work/bench.out"; exit 1; }
    local acked stored
    acked=$(grep -m1 -oE 'acked [0-9]+ \([0-9]+/s\)' "$work/bench.out" || true)
    stored=$(psql -X -Atq "$pg/$db" -c "SELECT count(*) FROM messages WHERE kind = 'message'")
    printf '%-34s %s; stored %s' "$name" "${acked:-see below}" "$stored"
    if [[ $hook == 1 ]]; then
        wait "$spid" || true
        spid=
        local delivered
        delivered=$(psql -X -Atq "$pg/$db" -c \
            "SELECT coalesce(sum(delivered_seq), 0) FROM webhook_cursors WHERE endpoint = 'bench'")
        printf '; webhook %s; cursors at %s' "$(cat "$work/sink.out")" "$delivered"
    fi
    echo
    [[ -n ${VERBOSE:-} ]] && cat "$work/bench.out"
    kill -TERM "$pid"; wait "$pid" || true
    pid=
}

if [[ -z ${LAG_ONLY:-} ]]; then
    run "closed loop, no webhook" 0 --window 32
    run "closed loop, one webhook" 1 --window 32
    run "open loop $rate/s, no webhook" 0 --rate "$rate"
fi
run "open loop $rate/s, one webhook" 1 --rate "$rate"
