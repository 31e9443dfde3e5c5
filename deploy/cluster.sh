#!/usr/bin/env bash
# cluster.sh - N chatd nodes behind nginx on one machine, without containers: for
# multi-node tests, load tests and trying rolling restarts.
#
#   deploy/cluster.sh up N          build, migrate, start node-1..N on ports 3001..3000+N and
#                                   nginx on $CLUSTER_PORT (8080); wait until all are ready
#   deploy/cluster.sh down          stop exactly what "up" started (safe to repeat)
#   deploy/cluster.sh status        one line per process; exit 0 all up, 1 degraded, 3 down
#   deploy/cluster.sh stop-node K   stop node K (nginx routes around it)
#   deploy/cluster.sh start-node K  start node K again and wait until it is ready
#   deploy/cluster.sh restart       rolling restart, one node at a time
#
# Environment: DATABASE_URL (default: deploy/pg.sh ensure + /chatd_cluster), CLUSTER_PORT
# (8080), CHATD_BIN (use this binary instead of building target/release/chatd),
# CHATD_CONFIG (the nodes' configuration, default chat.toml), CLUSTER_BASE_PORT (3000:
# node K listens on base + K, its metrics on base + 100 + K), CLUSTER_CONN_PER_ADDR
# (1000: connections nginx allows one client address), READY_TIMEOUT (60 s),
# STOP_TIMEOUT (30 s, then SIGKILL), CLUSTER_STANDBY=1 (also start a hot standby of the
# database server with deploy/pg.sh standby; the nodes read history from it through
# DATABASE_READ_URL; "down" stops it).
#
# Each node runs with CHATD_CONFIG plus what running behind nginx needs (node-K.toml):
# [server] listen = "127.0.0.1" (reachable through nginx only), [limits]
# trust_forwarded_for = true (nginx sets X-Forwarded-For to the client's address, so
# logins and registrations are limited per client, and nginx limits connections per
# client), [metrics] listen = "127.0.0.1:<base + 100 + K>".
#
# Everything lives in .local/cluster: cluster.env (settings of the running cluster),
# secrets.env (JWT secrets shared by all nodes, kept across down/up so tokens survive),
# node-K.toml / node-K.pid / node-K.log, migrate.log, nginx/ (prefix with conf, logs,
# temp, pid).
set -euo pipefail
shopt -s nullglob

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=$ROOT/.local/cluster
NGX=$STATE/nginx
BASE_PORT=${CLUSTER_BASE_PORT:-3000}
READY_TIMEOUT=${READY_TIMEOUT:-60}
STOP_TIMEOUT=${STOP_TIMEOUT:-30}

# Each socket is a descriptor and the soft limit is often 1024: lift it to the hard limit
# for the nodes and nginx (systemd's LimitNOFILE=65536 does the same in production).
h=$(ulimit -Hn); [[ $h == unlimited ]] && h=1048576
ulimit -n "$h" 2>/dev/null || true

log() { echo "cluster.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# setsid gives each process its own session: a Ctrl-C or hang-up in this terminal must not
# reach the nodes. (A background job of a non-interactive shell is never a process group
# leader, so setsid execs in place and $! stays the server's own pid.)
SETSID=(); command -v setsid >/dev/null && SETSID=(setsid)

load_env() {
    [[ -f $STATE/cluster.env ]] || return 1
    # shellcheck source=/dev/null
    source "$STATE/cluster.env"
    # shellcheck source=/dev/null
    source "$STATE/secrets.env"
    BASE_PORT=${CLUSTER_BASE_PORT:-$BASE_PORT}
    export DATABASE_URL JWT_ACCESS_SECRET JWT_REFRESH_SECRET
    if [[ -n ${DATABASE_READ_URL:-} ]]; then export DATABASE_READ_URL; fi
}
need_env() { load_env || die "no cluster is up (run: deploy/cluster.sh up N)"; }

# 0 if the pid in file $1 runs and its command line contains $2. The check guards against a
# recycled pid, and a zombie (empty command line) counts as gone.
alive() {
    local pid
    [[ -f $1 ]] || return 1
    pid=$(<"$1")
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
    [[ -r /proc/$pid/cmdline ]] || return 0
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$2"
}

port_free() { ! timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# HTTP status of GET http://127.0.0.1:$1$2 ("000" or empty when nothing answers).
http_code() {
    if command -v curl >/dev/null; then
        curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$1$2" 2>/dev/null || true
    else
        # shellcheck disable=SC2016
        timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0
            printf "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" "$1" >&3
            read -r _ code _ <&3; echo "$code"' "$1" "$2" 2>/dev/null || true
    fi
}

# SIGTERM every live process of the pid files $2..., give them STOP_TIMEOUT s together,
# then SIGKILL what is left (with its children: nginx workers outlive a killed master).
stop_group() {
    local pat=$1 pf pid end; shift
    local running=()
    for pf; do
        if alive "$pf" "$pat"; then running+=("$pf"); kill -TERM "$(<"$pf")" 2>/dev/null || true
        else rm -f "$pf"; fi
    done
    end=$((SECONDS + STOP_TIMEOUT))
    for pf in ${running[@]+"${running[@]}"}; do
        pid=$(<"$pf")
        while alive "$pf" "$pat" && ((SECONDS < end)); do sleep 0.2; done
        if alive "$pf" "$pat"; then
            log "$(basename "$pf" .pid) (pid $pid) still running after ${STOP_TIMEOUT}s: SIGKILL"
            # shellcheck disable=SC2046
            kill -KILL $(pgrep -P "$pid" 2>/dev/null) "$pid" 2>/dev/null || true
            for _ in $(seq 1 25); do alive "$pf" "$pat" || break; sleep 0.2; done
        fi
        log "stopped $(basename "$pf" .pid) (pid $pid)"
        rm -f "$pf"
    done
}

node_port() { echo $((BASE_PORT + $1)); }
metrics_port() { echo $((BASE_PORT + 100 + $1)); }

# CONFIG with the keys of node $1 set (see the top of this file) into node-$1.toml: each
# key replaces its line in its table, tables missing from CONFIG are added.
render_config() {
    awk -v mport="$(metrics_port "$1")" '
        BEGIN {
            want["server"] = "listen = \"127.0.0.1\""
            want["limits"] = "trust_forwarded_for = true"
            want["metrics"] = "listen = \"127.0.0.1:" mport "\""
        }
        function key(line) { sub(/[ \t]*=.*/, "", line); gsub(/[ \t]/, "", line); return line }
        /^[ \t]*\[[^]]+\][ \t]*(#.*)?$/ {
            table = $0; sub(/^[ \t]*\[/, "", table); sub(/\].*/, "", table)
            print
            if (table in want) { print want[table]; done[table] = 1; skip = key(want[table]) }
            else skip = ""
            next
        }
        skip != "" && key($0) == skip { next }
        { print }
        END { for (t in want) if (!(t in done)) printf "\n[%s]\n%s\n", t, want[t] }
    ' "$CONFIG" >"$STATE/node-$1.toml"
}

check_k() {
    if ! [[ ${1:-} =~ ^[0-9]+$ ]] || (($1 < 1 || $1 > NODES)); then die "node number must be 1..$NODES"; fi
}

start_node() {
    local k=$1 port pf=$STATE/node-$1.pid
    port=$(node_port "$k")
    if alive "$pf" "$BIN"; then log "node-$k already runs (pid $(<"$pf"))"; return 0; fi
    port_free "$port" || die "port $port (node-$k) is taken by another process"
    log "starting node-$k on port $port (log: $STATE/node-$k.log)"
    echo "=== cluster.sh: starting node-$k, $(date '+%F %T')" >>"$STATE/node-$k.log"
    render_config "$k"
    PORT=$port CHATD_NODE_ID=node-$k ${SETSID[@]+"${SETSID[@]}"} "$BIN" --config "$STATE/node-$k.toml" \
        </dev/null >>"$STATE/node-$k.log" 2>&1 &
    echo $! >"$pf"
}

stop_node() {
    if alive "$STATE/node-$1.pid" "$BIN"; then stop_group "$BIN" "$STATE/node-$1.pid"
    else rm -f "$STATE/node-$1.pid"; log "node-$1 is not running"; fi
}

# Wait until node $1 answers /ready with 200, at most until $2 (in $SECONDS); on failure
# show why: the tail of its log.
wait_ready() {
    local k=$1 end=$2 port
    port=$(node_port "$k")
    while :; do
        [[ $(http_code "$port" /ready) == 200 ]] && return 0
        if ! alive "$STATE/node-$k.pid" "$BIN"; then log "node-$k exited"; break; fi
        ((SECONDS < end)) || { log "node-$k is not ready after ${READY_TIMEOUT}s"; break; }
        sleep 0.5
    done
    log "last lines of $STATE/node-$k.log:"
    tail -n 30 "$STATE/node-$k.log" >&2 || true
    return 1
}

find_nginx() {
    command -v nginx 2>/dev/null && return 0
    local p; for p in /usr/sbin/nginx /usr/local/sbin/nginx /usr/local/nginx/sbin/nginx; do
        [[ -x $p ]] && { echo "$p"; return 0; }
    done
    return 1
}

# The template with its upstream block and listen port replaced (see deploy/nginx.conf).
render_nginx() {
    if ! grep -q '# UPSTREAM_SERVERS end' "$ROOT/deploy/nginx.conf" || ! grep -q '# LISTEN_PORT' "$ROOT/deploy/nginx.conf" ||
        ! grep -q '# CONN_PER_ADDR' "$ROOT/deploy/nginx.conf"; then
        die "deploy/nginx.conf lacks the UPSTREAM_SERVERS / LISTEN_PORT / CONN_PER_ADDR markers"
    fi
    awk -v n="$NODES" -v base="$BASE_PORT" -v port="$CLUSTER_PORT" -v per_addr="$CONN_PER_ADDR" '
        /# UPSTREAM_SERVERS begin/ {
            print
            for (k = 1; k <= n; k++) printf "        server 127.0.0.1:%d max_fails=1 fail_timeout=2s;\n", base + k
            skip = 1; next
        }
        /# UPSTREAM_SERVERS end/ { skip = 0 }
        skip { next }
        /# LISTEN_PORT/ { sub(/listen [0-9]+;/, "listen " port ";") }
        /# CONN_PER_ADDR/ { sub(/chatd_per_addr [0-9]+;/, "chatd_per_addr " per_addr ";") }
        { print }' "$ROOT/deploy/nginx.conf" >"$NGX/conf/nginx.conf"
}

nginx_cmd() {
    NGINX_ARGS=(-p "$NGX/" -c conf/nginx.conf)
    # -e (nginx >= 1.19.5) keeps even start-up errors out of /var/log/nginx.
    if "$NGINX" -h 2>&1 | grep -q -- '-e filename'; then NGINX_ARGS+=(-e logs/error.log); fi
}

start_nginx() {
    mkdir -p "$NGX/conf" "$NGX/logs" "$NGX/temp"
    render_nginx
    nginx_cmd
    "$NGINX" "${NGINX_ARGS[@]}" -t -q >"$NGX/logs/test.log" 2>&1 ||
        { cat "$NGX/logs/test.log" >&2; die "nginx rejects $NGX/conf/nginx.conf"; }
    log "starting nginx on port $CLUSTER_PORT (prefix $NGX)"
    ${SETSID[@]+"${SETSID[@]}"} "$NGINX" "${NGINX_ARGS[@]}" -g 'daemon off;' \
        </dev/null >>"$NGX/logs/stderr.log" 2>&1 &
    echo $! >"$STATE/nginx.pid"
}

cmd_up() {
    local n=${1:-} was_running=0 base
    [[ $n =~ ^[1-9][0-9]?$ ]] || die "usage: deploy/cluster.sh up N   (N = 1..99 nodes)"
    local st=0
    if [[ -f $STATE/cluster.env ]]; then
        (cmd_status >/dev/null 2>&1) || st=$?
        ((st == 3)) || die "a cluster is already up (deploy/cluster.sh status); run deploy/cluster.sh down first"
    fi
    NGINX=$(find_nginx) || die "nginx is not installed: apt-get install -y nginx"
    NODES=$n CLUSTER_PORT=${CLUSTER_PORT:-8080} CONN_PER_ADDR=${CLUSTER_CONN_PER_ADDR:-1000}
    [[ $CLUSTER_PORT =~ ^[0-9]+$ ]] || die "CLUSTER_PORT must be a port number"
    [[ $CONN_PER_ADDR =~ ^[1-9][0-9]*$ ]] || die "CLUSTER_CONN_PER_ADDR must be a positive number"
    port_free "$CLUSTER_PORT" || die "port $CLUSTER_PORT is taken (set CLUSTER_PORT)"
    local k
    for ((k = 1; k <= NODES; k++)); do
        port_free "$(node_port "$k")" || die "port $(node_port "$k") (node-$k) is taken by another process"
    done
    mkdir -p "$STATE"
    rm -f "$STATE"/node-*.log "$STATE"/migrate.log   # a new cluster, new logs

    # From here on a failure (or Ctrl-C) takes down whatever was already started.
    PG_STARTED=0
    # (Signals are turned into exits so that the EXIT trap runs in every case.)
    trap 'rc=$?; if ((rc)); then log "up failed; stopping what it started"; cmd_down || true; fi' EXIT
    trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 143' TERM

    if [[ -z ${DATABASE_URL:-} ]]; then
        "$ROOT/deploy/pg.sh" status >/dev/null 2>&1 && was_running=1
        base=$("$ROOT/deploy/pg.sh" ensure)
        if ((!was_running)) && "$ROOT/deploy/pg.sh" status >/dev/null 2>&1; then PG_STARTED=1; fi
        DATABASE_URL=$base/chatd_cluster
    fi
    DATABASE_READ_URL= STANDBY_STARTED=0
    if [[ ${CLUSTER_STANDBY:-0} == 1 ]]; then
        local standby
        standby=$("$ROOT/deploy/pg.sh" standby "${DATABASE_URL%/*}") || die "the standby did not start"
        STANDBY_STARTED=1 DATABASE_READ_URL=$standby/${DATABASE_URL##*/}
        log "nodes read history from the standby $DATABASE_READ_URL"
    fi

    if [[ -n ${CHATD_BIN:-} ]]; then
        BIN=$(cd "$(dirname "$CHATD_BIN")" && pwd)/$(basename "$CHATD_BIN")
    else
        BIN=$ROOT/target/release/chatd
        PATH=$PATH:$HOME/.cargo/bin
        command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs)"
        log "building (cargo build --release --bin chatd)"
        (cd "$ROOT" && cargo build --release --bin chatd) || die "build failed"
    fi
    [[ -x $BIN ]] || die "$BIN is not an executable"
    CONFIG=${CHATD_CONFIG:-$ROOT/chat.toml}

    if [[ ! -s $STATE/secrets.env ]]; then
        log "generating the cluster's JWT secrets ($STATE/secrets.env)"
        (umask 077; printf 'JWT_ACCESS_SECRET=%s\nJWT_REFRESH_SECRET=%s\n' \
            "$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" \
            "$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" >"$STATE/secrets.env")
    fi
    {
        printf 'NODES=%q\nCLUSTER_PORT=%q\nDATABASE_URL=%q\n' "$NODES" "$CLUSTER_PORT" "$DATABASE_URL"
        printf 'BIN=%q\nCONFIG=%q\nNGINX=%q\nPG_STARTED=%q\n' "$BIN" "$CONFIG" "$NGINX" "$PG_STARTED"
        printf 'DATABASE_READ_URL=%q\nSTANDBY_STARTED=%q\n' "$DATABASE_READ_URL" "$STANDBY_STARTED"
        printf 'CLUSTER_BASE_PORT=%q\nCONN_PER_ADDR=%q\n' "$BASE_PORT" "$CONN_PER_ADDR"
    } >"$STATE/cluster.env"
    load_env

    # Once, before any node: N nodes migrating at the same moment would only contend.
    log "migrating $DATABASE_URL (log: $STATE/migrate.log)"
    "$BIN" --config "$CONFIG" migrate >"$STATE/migrate.log" 2>&1 ||
        { tail -n 30 "$STATE/migrate.log" >&2; die "chatd migrate failed"; }

    local end=$((SECONDS + READY_TIMEOUT))
    for ((k = 1; k <= NODES; k++)); do start_node "$k"; done
    start_nginx
    for ((k = 1; k <= NODES; k++)); do wait_ready "$k" "$end" || die "node-$k did not become ready"; done
    until [[ $(http_code "$CLUSTER_PORT" /health) == 200 ]]; do
        if ! alive "$STATE/nginx.pid" "$NGX" || ((SECONDS >= end)); then
            tail -n 30 "$NGX/logs/stderr.log" "$NGX/logs/error.log" >&2 2>/dev/null || true
            die "nginx does not answer /health on port $CLUSTER_PORT"
        fi
        sleep 0.5
    done
    trap - EXIT HUP INT TERM

    echo "chatd cluster is up: $NODES node(s), database $DATABASE_URL"
    echo "  http://127.0.0.1:$CLUSTER_PORT"
    echo "  ws://127.0.0.1:$CLUSTER_PORT/ws"
    for ((k = 1; k <= NODES; k++)); do
        echo "  node-$k: http://127.0.0.1:$(node_port "$k")  ws://127.0.0.1:$(node_port "$k")/ws  metrics http://127.0.0.1:$(metrics_port "$k")/metrics  (log: $STATE/node-$k.log)"
    done
    echo "stop it with: deploy/cluster.sh down"
}

cmd_down() {
    # Defaults when cluster.env is gone (or "up" failed before writing it).
    BIN=${BIN:-chatd} PG_STARTED=${PG_STARTED:-0} STANDBY_STARTED=${STANDBY_STARTED:-0}
    load_env || true
    local pids=("$STATE"/*.pid) nodes=("$STATE"/node-*.pid)
    if ((${#pids[@]} == 0)); then
        log "nothing is running"
    else
        # nginx first, so no new request reaches a node that is shutting down.
        stop_group "$NGX" "$STATE/nginx.pid"
        stop_group "$BIN" ${nodes[@]+"${nodes[@]}"}
    fi
    if [[ $STANDBY_STARTED == 1 ]]; then "$ROOT/deploy/pg.sh" standby-stop "${DATABASE_URL%/*}" || true; fi
    # The throwaway PostgreSQL only if this cluster started it (its data stays in .local/pg).
    if [[ $PG_STARTED == 1 ]]; then "$ROOT/deploy/pg.sh" stop; fi
    rm -f "$STATE/cluster.env"
    log "cluster is down"
}

# One line per process. Exit 0 when everything is up and ready, 1 when degraded, 3 when
# nothing runs.
cmd_status() {
    load_env || { echo "cluster is down"; return 3; }
    local k port code live=0 ok=0 pf
    for ((k = 1; k <= NODES; k++)); do
        port=$(node_port "$k") pf=$STATE/node-$k.pid
        if alive "$pf" "$BIN"; then
            code=$(http_code "$port" /ready) live=$((live + 1))
            [[ $code == 200 ]] && ok=$((ok + 1))
            echo "node-$k  port $port  pid $(<"$pf")  /ready ${code:-000}"
        else echo "node-$k  port $port  stopped"; fi
    done
    if alive "$STATE/nginx.pid" "$NGX"; then
        code=$(http_code "$CLUSTER_PORT" /health) live=$((live + 1))
        [[ $code == 200 ]] && ok=$((ok + 1))
        echo "nginx   port $CLUSTER_PORT  pid $(<"$STATE/nginx.pid")  /health ${code:-000}"
    else echo "nginx   port $CLUSTER_PORT  stopped"; fi
    echo "database $DATABASE_URL"
    if [[ -n ${DATABASE_READ_URL:-} ]]; then echo "standby $DATABASE_READ_URL"; fi
    if ((ok == NODES + 1)); then return 0; fi
    if ((live > 0)); then return 1; fi
    return 3
}

cmd_stop_node() { need_env; check_k "${1:-}"; stop_node "$1"; }

cmd_start_node() {
    need_env; check_k "${1:-}"
    start_node "$1"
    wait_ready "$1" $((SECONDS + READY_TIMEOUT)) || die "node-$1 did not become ready"
    log "node-$1 is ready"
}

# One node at a time; the others keep serving, and clients of the stopped node (closed
# with 1001) reconnect through nginx and catch up with last_seen_seq.
cmd_restart() {
    need_env
    local k
    for ((k = 1; k <= NODES; k++)); do
        stop_node "$k"
        start_node "$k"
        wait_ready "$k" $((SECONDS + READY_TIMEOUT)) || die "node-$k did not come back; rolling restart stopped"
        log "node-$k restarted and ready"
    done
}

case ${1:-} in
    up) cmd_up "${2:-}" ;;
    down) cmd_down ;;
    status) cmd_status ;;
    stop-node) cmd_stop_node "${2:-}" ;;
    start-node) cmd_start_node "${2:-}" ;;
    restart) cmd_restart ;;
    *) echo "usage: $0 up N | down | status | stop-node K | start-node K | restart" >&2; exit 2 ;;
esac
