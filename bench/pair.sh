#!/usr/bin/env bash
# Paired runs: the same benchmarks against two chatd binaries, alternated, each run on a
# fresh database and a freshly started server, so that a change is judged by a ratio
# measured within one session on one machine.
#
#   bench/pair.sh OLD_BIN NEW_BIN [ROUNDS]        (ROUNDS default 2: A B, then B A)
#
# Environment:
#   CHAT_BENCH   chat-bench binary (default target/release/chat-bench)
#   TEST_PG_URL  PostgreSQL base URL without a database (postgres://postgres@127.0.0.1:5432)
#   SCENARIOS    subset of: fanout throughput delivery quiet connections history (default: all)
#   DURATION     seconds of the throughput run (30)
#   OUT          directory for the JSON of each run (default: a temp dir)
#
# Prints one line per run (scenario, binary, headline figures) and leaves the JSON in $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n 2,15p "$0"; exit 3; }
bins=("$1" "$2")
rounds=${3:-2}
bench=${CHAT_BENCH:-target/release/chat-bench}
pg=${TEST_PG_URL:-postgres://postgres@127.0.0.1:5432}
scenarios=${SCENARIOS:-fanout throughput delivery quiet connections history}
# wrk measures the history scenario: stop at once, saying what to install, rather than halfway.
if [[ " $scenarios " == *" history "* ]] && ! command -v wrk >/dev/null; then
    echo "pair.sh: wrk is missing for the history scenario (apt-get install wrk)" >&2
    exit 1
fi
duration=${DURATION:-30}
out=${OUT:-$(mktemp -d /tmp/chatd-pair.XXXXXX)}
mkdir -p "$out"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
port=3900
server=

stop_server() {
    if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then
        kill -TERM "$server"
        for _ in $(seq 1 100); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$server" 2>/dev/null || true
    fi
    server=
}
# Leave no database behind.
trap 'stop_server; psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS chatd_pair WITH (FORCE)" >/dev/null 2>&1 || true' EXIT

start_server() { # start_server BIN DB
    psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $2 WITH (FORCE)" >/dev/null 2>&1
    port=$((port + 1))
    # The load-test settings (abuse limits off) for binaries that know them; an older
    # binary refuses unknown keys, and had no such limits anyway.
    local cfg=
    if "$1" --config loadtest/server.toml check-config >/dev/null 2>&1; then cfg=loadtest/server.toml; fi
    CHATD_CONFIG=$cfg DATABASE_URL=$pg/$2 PORT=$port RUST_LOG=warn \
        JWT_ACCESS_SECRET=pair-access-secret-0123456789abcdefghij \
        JWT_REFRESH_SECRET=pair-refresh-secret-0123456789abcdefghi \
        "$1" >"$out/server-$port.log" 2>&1 &
    server=$!
    for _ in $(seq 1 150); do
        curl -sf "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "pair: server $1 did not become ready" >&2
    return 1
}

# jq-free extraction of a few figures from chat-bench's JSON.
figures() {
    python3 - "$1" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
h, rt, s = r["histograms"], r["rates"], r["server"]
lat = h.get("latency", {})
ms = lambda us: "%.1f" % (us / 1000.0) if us else "-"
print("exit=%s delivered/s=%.0f acked/s=%.0f connect+join/s=%.0f p50=%s p99=%s ms server_cpu=%.0f%% rss_per_conn=%s frames/msg=%s" % (
    r["exit_code"], rt.get("delivered_per_s") or 0, rt.get("acked_per_s") or 0,
    rt.get("connect_join_per_s") or 0, ms(lat.get("p50_us")), ms(lat.get("p99_us")),
    s.get("cpu_pct_avg") or 0, s.get("rss_bytes_per_connection"),
    r.get("frames_per_message", "-")))
EOF
}

history_run() { # history_run -> prints requests/s of wrk on GET history
    local body token room
    body=$(curl -sf -X POST "http://127.0.0.1:$port/auth/register" -H 'content-type: application/json' \
        -d '{"username":"pairuser","email":"pair@example.com","password":"password123"}')
    token=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["tokens"]["accessToken"])' "$body")
    room=$(curl -sf -X POST "http://127.0.0.1:$port/rooms" -H "authorization: Bearer $token" \
        -H 'content-type: application/json' -d '{"name":"pair"}' |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    for i in $(seq 1 120); do
        curl -sf -o /dev/null -X POST "http://127.0.0.1:$port/rooms/$room/messages" \
            -H "authorization: Bearer $token" -H 'content-type: application/json' \
            -d "{\"content\":\"message number $i with some text to make it realistic\"}"
    done
    wrk -t2 -c64 -d10s -H "Authorization: Bearer $token" \
        "http://127.0.0.1:$port/rooms/$room/messages?limit=50" | awk '/Requests\/sec/ {print "requests/s=" $2} /Latency/ {print "latency_avg=" $2}' | tr '\n' ' '
    echo
}

run_one() { # run_one SCENARIO BIN TAG
    local sc=$1 bin=$2 tag=$3 json
    json="$out/$sc-$tag.json"
    start_server "$bin" "chatd_pair" || return 0
    local u=127.0.0.1:$port common=(--url "127.0.0.1:$port" --server-pid "$server" --json "$json")
    case $sc in
        fanout) "$bench" fanout --rate 600 "${common[@]}" >"$out/$sc-$tag.txt" 2>&1 || true ;;
        throughput) "$bench" throughput --rooms 100 --senders 100 --receivers 100 --window 32 \
            --duration "$duration" "${common[@]}" >"$out/$sc-$tag.txt" 2>&1 || true ;;
        delivery) "$bench" delivery --senders 120 --messages 80 --interval-ms 80 --receivers 300 \
            "${common[@]}" >"$out/$sc-$tag.txt" 2>&1 || true ;;
        quiet) "$bench" delivery --senders 1 --messages 20 --interval-ms 500 --receivers 100 \
            "${common[@]}" >"$out/$sc-$tag.txt" 2>&1 || true ;;
        connections) "$bench" connections --connections 10000 --rooms 100 --hold 2 --users 500 \
            --threads 2 --connect-concurrency 400 "${common[@]}" >"$out/$sc-$tag.txt" 2>&1 || true ;;
        history) echo "$sc $tag $(history_run)"; stop_server; return 0 ;;
    esac
    : "$u"
    if [ -f "$json" ]; then echo "$sc $tag $(figures "$json")"; else echo "$sc $tag no result (see $out/$sc-$tag.txt)"; fi
    stop_server
}

echo "pair: A=${bins[0]} B=${bins[1]} rounds=$rounds out=$out"
for r in $(seq 1 "$rounds"); do
    for sc in $scenarios; do
        if [ $((r % 2)) -eq 1 ]; then order=(0 1); else order=(1 0); fi
        for i in "${order[@]}"; do
            tag=$([ "$i" -eq 0 ] && echo A || echo B)$r
            run_one "$sc" "${bins[$i]}" "$tag"
        done
    done
done
