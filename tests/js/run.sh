#!/usr/bin/env bash
# Runs the chatd.js client tests (Node's own test runner) against real chatd nodes.
#   tests/js/run.sh            uses target/release/chatd (build it first:
#                              cargo build --release --bin chatd) or $CHATD_BIN
# Needs node (20 or later), nginx, psql and a PostgreSQL at $TEST_PG_URL
# (default postgres://postgres@127.0.0.1:5432); each test creates and drops its own
# database chatd_js_<random>.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

fail() { echo "tests/js/run.sh: $*" >&2; exit 1; }

command -v node >/dev/null || fail "node is missing: install Node.js 20 or later (Debian: apt-get install nodejs)"
major=$(node -p 'process.versions.node.split(".")[0]')
(( major >= 20 )) || fail "node $(node --version) is too old: Node.js 20 or later is needed"
command -v nginx >/dev/null || fail "nginx is missing (Debian: apt-get install nginx); the cluster test needs it"
command -v psql >/dev/null || fail "psql is missing (Debian: apt-get install postgresql-client); tests create their databases with it"
export CHATD_BIN=${CHATD_BIN:-$PWD/target/release/chatd}
[[ -x $CHATD_BIN ]] || fail "no chatd binary at $CHATD_BIN: run 'cargo build --release --bin chatd' or set CHATD_BIN"
export TEST_PG_URL=${TEST_PG_URL:-postgres://postgres@127.0.0.1:5432}
psql "$TEST_PG_URL/postgres" -qAtc 'select 1' >/dev/null 2>&1 \
    || fail "cannot reach PostgreSQL at $TEST_PG_URL (set TEST_PG_URL)"

flags=()
# Node 20 has WebSocket behind a flag; 22 and later have it on by default.
node -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)' 2>/dev/null || flags+=(--experimental-websocket)
# TAP on stdout whatever the terminal: tests/it/clients.rs reads its summary.
exec node "${flags[@]}" --test --test-reporter=tap tests/js/
