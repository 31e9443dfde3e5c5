#!/usr/bin/env bash
# pg.sh - make sure a PostgreSQL answers, for run.sh, cluster.sh and the tests.
#
#   deploy/pg.sh ensure   print the URL base to use, e.g. postgres://postgres@127.0.0.1:5432
#                         (append "/dbname"; chatd creates the database when missing)
#   deploy/pg.sh stop     stop the throwaway cluster, if one runs (never a system server)
#   deploy/pg.sh status   exit 0 if the throwaway cluster runs (and print its URL), else 3
#   deploy/pg.sh standby [URL]
#                         start (or reuse) a hot standby of the primary at URL (default: what
#                         "ensure" prints) streaming from it, and print its URL base
#   deploy/pg.sh standby-stop [URL]
#                         stop that standby (its directory stays; delete it to start afresh)
#
# "ensure" first probes $PGHOST:$PGPORT (default 127.0.0.1:5432, user $PGUSER or postgres,
# no password). If nothing usable answers there, it starts (and later reuses) a throwaway
# cluster from the system binaries in .local/pg (CHATD_PGDIR overrides): trust auth,
# 127.0.0.1 only, on $PGPORT if set, else the first free port from 5433.
#
# Messages go to stderr; stdout carries only the URL, so callers can do
#   DATABASE_URL="$(deploy/pg.sh ensure)/chatd"
# Sourcing defines pg_ensure / pg_stop / pg_status without running anything; their bodies
# are subshells, so set -euo pipefail and exit stay out of the caller's shell.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

pg_log() { echo "pg.sh: $*" >&2; }

# Newest server binaries: Debian/Ubuntu keep them outside PATH in /usr/lib/postgresql/N/bin.
pg_bindir() {
    local d
    d=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin 2>/dev/null | sort -V | tail -n 1)
    if [[ -n $d && -x $d/pg_ctl ]]; then echo "$d"; return 0; fi
    d=$(command -v pg_ctl 2>/dev/null) && { dirname "$d"; return 0; }
    return 1
}

# initdb and pg_ctl refuse to run as root: run them as the postgres user then.
as_pg() {
    if [[ $EUID -ne 0 ]]; then "$@"
    elif command -v runuser >/dev/null; then runuser -u postgres -- "$@"
    else su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
    fi
}

# Where the throwaway cluster lives. Under root it must be reachable by the postgres user:
# a repo below a private home (/root is 0700) is not, so fall back to a fixed /var/tmp path
# derived from the repo path (stable, so "stop" finds what "ensure" started).
pg_dir() {
    if [[ -n ${CHATD_PGDIR:-} ]]; then echo "$CHATD_PGDIR"; return; fi
    mkdir -p "$ROOT/.local"
    if [[ $EUID -eq 0 ]] && id postgres >/dev/null 2>&1 && ! as_pg test -x "$ROOT/.local"; then
        echo "/var/tmp/chatd-pg-$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)"
    else
        echo "$ROOT/.local/pg"
    fi
}

# Exit status 0 if a server accepts connections on host $1 port $2.
pg_probe() {
    local bin
    bin=$(pg_bindir 2>/dev/null) || true
    if command -v pg_isready >/dev/null; then pg_isready -q -t 2 -h "$1" -p "$2"
    elif [[ -n $bin && -x $bin/pg_isready ]]; then "$bin/pg_isready" -q -t 2 -h "$1" -p "$2"
    else timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null   # no client: port check only
    fi
}

# Exit status 0 if user $3 can log in without a password (what the printed URL promises).
pg_login() {
    local psql
    psql=$(command -v psql 2>/dev/null) || psql="$(pg_bindir 2>/dev/null)/psql"
    [[ -x $psql ]] || return 0   # no psql anywhere: trust the probe
    PGCONNECT_TIMEOUT=3 "$psql" -X -w -q -h "$1" -p "$2" -U "$3" -d postgres -Atc 'select 1' >/dev/null 2>&1
}

port_free() { ! timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# Port of the running throwaway cluster (line 4 of postmaster.pid), if it runs.
own_port() {
    local dir=$1 bin
    bin=$(pg_bindir) || return 1
    [[ -f $dir/data/PG_VERSION ]] || return 1
    as_pg "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1 || return 1
    sed -n 4p "$dir/data/postmaster.pid"
}

pg_ensure() (
    set -euo pipefail
    host=${PGHOST:-127.0.0.1} port=${PGPORT:-5432} user=${PGUSER:-postgres}

    # 1. A server that is already there (the system one, or our own from an earlier run).
    if pg_probe "$host" "$port"; then
        if pg_login "$host" "$port" "$user"; then
            echo "postgres://$user@$host:$port"; exit 0
        fi
        pg_log "PostgreSQL on $host:$port refuses user '$user' without a password;" \
               "using a throwaway cluster instead (or set DATABASE_URL yourself)"
    fi

    # 2. The throwaway cluster. A lock keeps two concurrent callers from racing initdb.
    dir=$(pg_dir)
    mkdir -p "$(dirname "$dir")"
    if command -v flock >/dev/null; then exec 9>"$dir.lock"; flock 9; fi

    if ! bin=$(pg_bindir); then
        pg_log "no PostgreSQL server binaries found (initdb, pg_ctl) and nothing answers on $host:$port."
        pg_log "install them:  apt-get install postgresql   (or set DATABASE_URL to a reachable server)"
        exit 1
    fi
    if [[ $EUID -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
        pg_log "running as root but there is no 'postgres' user to own the cluster (initdb refuses root)."
        pg_log "create it (useradd --system postgres) or run as an ordinary user"
        exit 1
    fi

    if p=$(own_port "$dir"); then
        pg_log "reusing the throwaway cluster in $dir (port $p)"
        echo "postgres://postgres@127.0.0.1:$p"; exit 0
    fi

    # Port: $PGPORT when asked for, else the one used last time, else the first free from 5433.
    if [[ -n ${PGPORT:-} ]]; then port=$PGPORT
    elif [[ -f $dir/port ]]; then port=$(cat "$dir/port")
    else port=5433; while ! port_free "$port"; do port=$((port + 1)); done
    fi
    if ! port_free "$port"; then
        pg_log "port $port is taken by something that is not a usable PostgreSQL; set PGPORT to a free port"
        exit 1
    fi

    if [[ ! -f $dir/data/PG_VERSION ]]; then
        pg_log "initialising a throwaway cluster in $dir"
        if [[ $EUID -eq 0 ]]; then install -d -o postgres -g "$(id -gn postgres)" -m 700 "$dir"
        else install -d -m 700 "$dir"; fi
        as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C \
            >"$dir/initdb.log" 2>&1 || { tail -n 20 "$dir/initdb.log" >&2; pg_log "initdb failed"; exit 1; }
        # TCP on loopback only, no Unix socket (its default directory may not exist or be
        # writable); room for a few chatd nodes (pool_size 16 each) plus tests.
        # (Appending as root keeps the file's owner.)
        printf '%s\n' "listen_addresses = '127.0.0.1'" "unix_socket_directories = ''" \
            'max_connections = 200' >>"$dir/data/postgresql.conf"
    fi

    pg_log "starting the throwaway cluster on 127.0.0.1:$port (log: $dir/postgres.log)"
    # 9>&-: the server must not inherit the lock, or it would hold it for as long as it runs.
    if ! as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -o "-p $port" -w -t 60 start >/dev/null 9>&-; then
        tail -n 20 "$dir/postgres.log" >&2 || true
        pg_log "PostgreSQL did not start"; exit 1
    fi
    echo "$port" >"$dir/port"
    for _ in $(seq 1 60); do
        if pg_probe 127.0.0.1 "$port"; then echo "postgres://postgres@127.0.0.1:$port"; exit 0; fi
        sleep 0.5
    done
    pg_log "PostgreSQL on port $port started but does not answer; see $dir/postgres.log"
    exit 1
)

pg_stop() (
    set -euo pipefail
    dir=$(pg_dir)
    if ! p=$(own_port "$dir"); then pg_log "no throwaway cluster running ($dir)"; exit 0; fi
    pg_log "stopping the throwaway cluster on port $p"
    as_pg "$(pg_bindir)/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
)

pg_status() (
    set -euo pipefail
    dir=$(pg_dir)
    if p=$(own_port "$dir"); then echo "postgres://postgres@127.0.0.1:$p"; exit 0; fi
    pg_log "no throwaway cluster running ($dir)"; exit 3
)

# A standby of the primary at URL $1: its directory ($CHATD_STANDBY_DIR, else beside the
# throwaway cluster's, one per primary port) and host, port and user of the primary.
standby_where() {
    local url=${1#postgres*://}
    url=${url%%/*}
    SB_USER=postgres
    if [[ $url == *@* ]]; then SB_USER=${url%%@*}; SB_USER=${SB_USER%%:*}; url=${url#*@}; fi
    SB_HOST=${url%%:*}
    SB_PORT=5432
    [[ $url == *:* ]] && SB_PORT=${url##*:}
    SB_DIR=${CHATD_STANDBY_DIR:-$(pg_dir)-standby-$SB_PORT}
}

pg_standby() (
    set -euo pipefail
    primary=${1:-$(pg_ensure)}
    standby_where "$primary"
    bin=$(pg_bindir) || { pg_log "no PostgreSQL server binaries found (pg_basebackup, pg_ctl)"; exit 1; }
    pg_probe "$SB_HOST" "$SB_PORT" || { pg_log "no primary answers on $SB_HOST:$SB_PORT"; exit 1; }
    mkdir -p "$(dirname "$SB_DIR")"
    if command -v flock >/dev/null; then exec 9>"$SB_DIR.lock"; flock 9; fi
    if p=$(own_port "$SB_DIR"); then
        pg_log "reusing the standby in $SB_DIR (port $p)"
        echo "postgres://postgres@127.0.0.1:$p"; exit 0
    fi
    if [[ -n ${STANDBY_PORT:-} ]]; then port=$STANDBY_PORT
    elif [[ -f $SB_DIR/port ]]; then port=$(cat "$SB_DIR/port")
    else port=5440; while ! port_free "$port"; do port=$((port + 1)); done
    fi
    port_free "$port" || { pg_log "port $port is taken; set STANDBY_PORT to a free port"; exit 1; }

    if [[ ! -f $SB_DIR/data/PG_VERSION ]]; then
        if [[ $EUID -eq 0 ]]; then install -d -o postgres -g "$(id -gn postgres)" -m 700 "$SB_DIR"
        else install -d -m 700 "$SB_DIR"; fi
        pg_log "copying the primary $SB_HOST:$SB_PORT into $SB_DIR (pg_basebackup)"
        # -R writes standby.signal and primary_conninfo: the copy starts as a streaming standby.
        if ! as_pg "$bin/pg_basebackup" -h "$SB_HOST" -p "$SB_PORT" -U "$SB_USER" -w \
            -D "$SB_DIR/data" -X stream -R -c fast >"$SB_DIR/basebackup.log" 2>&1; then
            cat "$SB_DIR/basebackup.log" >&2
            pg_log "pg_basebackup failed: the primary must accept replication connections from" \
                   "this host (pg_hba.conf: host replication $SB_USER 127.0.0.1/32 trust; wal_level" \
                   "replica or logical; max_wal_senders > 0)"
            rm -rf "$SB_DIR/data"; exit 1
        fi
        # A packaged server keeps its configuration outside the data directory: give the
        # copy its own. A hot standby needs these limits at least as high as the primary's.
        psql=$(command -v psql 2>/dev/null) || psql=$bin/psql
        limits=()
        for k in max_connections max_worker_processes max_wal_senders max_prepared_transactions max_locks_per_transaction; do
            v=$("$psql" -X -w -h "$SB_HOST" -p "$SB_PORT" -U "$SB_USER" -d postgres -Atc "show $k")
            limits+=("$k = $v")
        done
        printf '%s\n' "listen_addresses = '127.0.0.1'" "unix_socket_directories = ''" \
            "hot_standby = on" "${limits[@]}" | as_pg tee "$SB_DIR/data/postgresql.conf" >/dev/null
        printf '%s\n' "host all all 127.0.0.1/32 trust" "host replication all 127.0.0.1/32 trust" |
            as_pg tee "$SB_DIR/data/pg_hba.conf" >/dev/null
        : | as_pg tee "$SB_DIR/data/pg_ident.conf" >/dev/null
    fi

    pg_log "starting the standby on 127.0.0.1:$port (log: $SB_DIR/postgres.log)"
    if ! as_pg "$bin/pg_ctl" -D "$SB_DIR/data" -l "$SB_DIR/postgres.log" -o "-p $port" -w -t 60 start >/dev/null 9>&-; then
        tail -n 20 "$SB_DIR/postgres.log" >&2 || true
        pg_log "the standby did not start"; exit 1
    fi
    echo "$port" >"$SB_DIR/port"
    for _ in $(seq 1 60); do
        if pg_probe 127.0.0.1 "$port"; then echo "postgres://postgres@127.0.0.1:$port"; exit 0; fi
        sleep 0.5
    done
    pg_log "the standby on port $port started but does not answer; see $SB_DIR/postgres.log"
    exit 1
)

pg_standby_stop() (
    set -euo pipefail
    standby_where "${1:-$(pg_ensure)}"
    if ! p=$(own_port "$SB_DIR"); then pg_log "no standby running ($SB_DIR)"; exit 0; fi
    pg_log "stopping the standby on port $p"
    as_pg "$(pg_bindir)/pg_ctl" -D "$SB_DIR/data" -m fast -w -t 60 stop >/dev/null
)

# Executed (not sourced): dispatch the sub-command.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    set -euo pipefail
    case ${1:-} in
        ensure) pg_ensure ;;
        stop) pg_stop ;;
        status) pg_status ;;
        standby) pg_standby "${2:-}" ;;
        standby-stop) pg_standby_stop "${2:-}" ;;
        *) echo "usage: $0 ensure|stop|status|standby [URL]|standby-stop [URL]" >&2; exit 2 ;;
    esac
fi
