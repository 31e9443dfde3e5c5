#!/usr/bin/env bash
# test.sh - the whole test suite against a real PostgreSQL:
#
#   deploy/test.sh [cargo test args...]
#
# Uses the PostgreSQL at $TEST_PG_URL, else whatever deploy/pg.sh finds or starts
# (the system server on 127.0.0.1:5432, or a throwaway cluster). Each test creates and
# drops a database of its own.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
if [[ -z ${TEST_PG_URL:-} ]]; then
    TEST_PG_URL=$(deploy/pg.sh ensure) || { echo "test.sh: no PostgreSQL available (see above)" >&2; exit 1; }
    export TEST_PG_URL
fi
echo "test.sh: PostgreSQL at $TEST_PG_URL" >&2
# Sockets per test process can exceed the common 1024 soft limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# The acceptance checks run the release binary, built once here and shared by every
# test that starts chatd as a process.
cargo build --release --bin chatd
export CHATD_BIN=${CHATD_BIN:-$ROOT/target/release/chatd}
exec cargo test --workspace "$@"
