#!/usr/bin/env bash
# run.sh - run one chatd on a fresh machine with one command:
#
#   deploy/run.sh [chatd args...]     e.g. deploy/run.sh, deploy/run.sh migrate
#
# Without DATABASE_URL it finds or starts a PostgreSQL (deploy/pg.sh ensure) and uses the
# database "chatd" on it (chatd creates it); a throwaway PostgreSQL it had to start keeps
# running afterwards (deploy/pg.sh stop ends it). It builds the release binary (cargo is quick when
# nothing changed) and replaces itself with chatd --config chat.toml (CHATD_CONFIG overrides),
# so signals (Ctrl-C, SIGTERM) reach the server directly. Without JWT secrets in the
# environment it uses development secrets kept in .local/dev-secrets.env (made on the first
# run, git-ignored, like deploy/cluster.sh's): a restart keeps everyone signed in.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
log() { echo "run.sh: $*" >&2; }

if [[ -z ${DATABASE_URL:-} ]]; then
    base=$(deploy/pg.sh ensure) || { log "no PostgreSQL available (see above)"; exit 1; }
    export DATABASE_URL=$base/chatd
fi

PATH=$PATH:$HOME/.cargo/bin
command -v cargo >/dev/null || { log "cargo not found: install Rust from https://rustup.rs"; exit 1; }
cargo build --release --bin chatd || { log "build failed"; exit 1; }

# Development secrets that outlive the process: a restart signs nobody out.
if [[ -z ${JWT_ACCESS_SECRET:-} && -z ${JWT_REFRESH_SECRET:-} ]]; then
    secrets=.local/dev-secrets.env
    if [[ ! -s $secrets ]]; then
        mkdir -p .local
        (umask 077; printf 'JWT_ACCESS_SECRET=%s\nJWT_REFRESH_SECRET=%s\n' \
            "$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" \
            "$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" >"$secrets")
        log "development JWT secrets written to $secrets (delete it to sign everyone out)"
    fi
    # shellcheck source=/dev/null
    source "$secrets"
    export JWT_ACCESS_SECRET JWT_REFRESH_SECRET
fi

config=${CHATD_CONFIG:-chat.toml}
[[ -f $config ]] || { log "config file $config not found"; exit 1; }

# Each socket is a descriptor and the soft limit is often 1024: lift it to the hard limit.
h=$(ulimit -Hn); [[ $h == unlimited ]] && h=1048576
ulimit -n "$h" 2>/dev/null || true

# The port chatd will use: $PORT, else [server] port in the config, else 3000.
port=${PORT:-$(awk -F= '/^\[/ { s = $0 } s == "[server]" && $1 ~ /^[ \t]*port[ \t]*$/ { sub(/#.*/, "", $2); gsub(/[ \t"]/, "", $2); print $2; exit }' "$config")}
port=${port:-3000}
log "database $DATABASE_URL"
log "chatd on http://127.0.0.1:$port  (WebSocket ws://127.0.0.1:$port/ws; stop with Ctrl-C)"
exec target/release/chatd --config "$config" "$@"
