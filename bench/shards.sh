#!/usr/bin/env bash
# What each node's listener pays, with and without notification shards: 4 nodes on one
# database, ROOMS rooms, each node holding the sockets of a quarter of the rooms
# (chat-bench --by-room), a steady open-loop message rate over all rooms. For each
# shard count it reports, per node, the listener thread's CPU and the notifications it
# received, and the cluster message rate at which one listener would use a whole core.
#
#   bench/shards.sh [SHARDS...]        (default: 1 16; 1 is "every node hears every room")
#
# PLACEMENT=room (default) puts room k's sockets on node k mod 4, so each node's rooms
# fall in every shard; PLACEMENT=shard puts a room's sockets on the node of its shard
# (its shard out of the largest count measured, mod 4), what a load balancer with room
# affinity would do.
#
# Environment: CHATD_BIN (target/release/chatd), CHAT_BENCH (target/release/chat-bench),
# TEST_PG_URL (postgres://postgres@127.0.0.1:5432), ROOMS (1000), RATE (2000 msg/s in
# total), DURATION (30 s), OUT (a temp dir: JSON and logs).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${CHATD_BIN:-target/release/chatd}
bench=${CHAT_BENCH:-target/release/chat-bench}
pg=${TEST_PG_URL:-postgres://postgres@127.0.0.1:5432}
rooms=${ROOMS:-1000}
rate=${RATE:-2000}
duration=${DURATION:-30}
out=${OUT:-$(mktemp -d /tmp/chatd-shards.XXXXXX)}
shards=("$@")
[ ${#shards[@]} -gt 0 ] || shards=(1 16)
most=$(printf '%s\n' "${shards[@]}" | sort -n | tail -n 1)
mkdir -p "$out"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
hz=$(getconf CLK_TCK)
pids=()

stop_nodes() {
    for p in ${pids[@]+"${pids[@]}"}; do kill -TERM "$p" 2>/dev/null || true; done
    for p in ${pids[@]+"${pids[@]}"}; do
        for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
    done
    pids=()
}
trap stop_nodes EXIT

# CPU ticks (user + system) of the thread named $2 of process $1.
thread_ticks() {
    local t
    for t in /proc/"$1"/task/*; do
        if [[ $(cat "$t/comm" 2>/dev/null) == "$2" ]]; then
            awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "$t/stat"; return
        fi
    done
    echo 0
}

# Node K serves its metrics on 4050 + K (the public port does not serve them).
metric() { curl -sf "http://127.0.0.1:$(($1 + 100))/metrics" | awk -v m="$2" '$1 == m { print $2 }'; }

for n in "${shards[@]}"; do
    db=chatd_shards_$n
    psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
    cfg=$out/shards-$n.toml
    { cat loadtest/server.toml; printf '\n[database]\nnotify_shards = %s\n' "$n"; } >"$cfg"
    ports=()
    for k in 1 2 3 4; do
        port=$((3950 + k))
        ports+=("$port")
        { cat "$cfg"; printf '\n[metrics]\nlisten = "127.0.0.1:%s"\n' $((port + 100)); } >"$cfg.$k"
        CHATD_CONFIG=$cfg.$k DATABASE_URL=$pg/$db PORT=$port CHATD_NODE_ID=shards-$k RUST_LOG=warn \
            JWT_ACCESS_SECRET=shards-access-secret-0123456789abcdefghij \
            JWT_REFRESH_SECRET=shards-refresh-secret-0123456789abcdefghi \
            "$bin" >"$out/node-$n-$k.log" 2>&1 &
        pids+=($!)
        # One at a time: the first creates the database and migrates.
        for _ in $(seq 1 150); do curl -sf "http://127.0.0.1:$port/ready" >/dev/null && break; sleep 0.1; done
    done
    urls=$(printf '127.0.0.1:%s,' "${ports[@]}"); urls=${urls%,}
    declare -A t0 n0
    # The sampling window is the run itself: provisioning and joins come first, so the
    # counters are read when chat-bench says "go" (its stderr), then again at the end.
    : >"$out/bench-$n.err"
    place=(--by-room)
    # The same placement for every shard count: by the rooms' shards out of the
    # largest count measured.
    if [[ ${PLACEMENT:-room} == shard ]]; then place=(--by-shard "$most"); fi
    "$bench" throughput --url "$urls" "${place[@]}" --rooms "$rooms" --senders "$rooms" \
        --receivers "$rooms" --rate "$rate" --duration "$duration" --users 200 \
        --json "$out/bench-$n.json" 2>"$out/bench-$n.err" >"$out/bench-$n.out" &
    bpid=$!
    until grep -q "go" "$out/bench-$n.err" 2>/dev/null || ! kill -0 $bpid 2>/dev/null; do sleep 0.2; done
    sleep 2 # past the join presence events
    start=$(date +%s.%N)
    for i in 0 1 2 3; do
        t0[$i]=$(thread_ticks "${pids[$i]}" listener)
        n0[$i]=$(metric "${ports[$i]}" chatd_notifications_total)
    done
    sleep $((duration - 4))
    end=$(date +%s.%N)
    for i in 0 1 2 3; do
        t1=$(thread_ticks "${pids[$i]}" listener)
        n1=$(metric "${ports[$i]}" chatd_notifications_total)
        shards_heard=$(metric "${ports[$i]}" chatd_listened_shards)
        awk -v n="$n" -v k=$((i + 1)) -v dt="$(echo "$end - $start" | bc)" -v hz="$hz" \
            -v ticks=$((t1 - t0[$i])) -v notes=$((n1 - n0[$i])) -v rate="$rate" -v heard="$shards_heard" -v place="${PLACEMENT:-room}" \
            'BEGIN { cpu = ticks / hz / dt;
                     printf "placement=%s shards=%-3s node-%d listener_cpu=%5.1f%% notifications/s=%7.0f listened_shards=%s", place, n, k, 100 * cpu, notes / dt, heard;
                     if (cpu > 0) printf " saturates_at~%.0f msg/s", rate / cpu;
                     printf "\n" }'
    done | tee -a "$out/summary.txt"
    wait $bpid || echo "shards=$n: chat-bench exited $? (see $out/bench-$n.out)" | tee -a "$out/summary.txt"
    grep -E "verdict|PASS|FAIL|delivered" "$out/bench-$n.out" | head -5 | sed "s/^/shards=$n: /"
    stop_nodes
    psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
done
echo "figures and logs in $out"
