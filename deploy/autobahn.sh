#!/usr/bin/env bash
# autobahn.sh - WebSocket conformance: the Autobahn test suite's cases 1-7 and 10 against
# chatd's /echo endpoint, which uses exactly the framing code of /ws and exists only when
# [websocket] echo_endpoint = true.
#
#   deploy/autobahn.sh          uses $CHATD_BIN, else target/release/chatd (built if missing)
#
# The fuzzing client is kosoku (PyPI, Python 3.10 or later): it drives the Autobahn
# TestSuite's own case files (shipped in its wheel) with a runner of its own, and gives
# the same verdicts as Autobahn's wstest, which runs only on Python 2.7 (no longer
# packaged by Debian, and not on PyPI). It is taken from $KOSOKU (a kosoku command),
# else installed from PyPI (pinned) into .local/kosoku with the machine's python3 the
# first time. Python 3 also runs the port lookup and the report.
#
# PostgreSQL: $TEST_PG_URL, else whatever deploy/pg.sh finds or starts. The node's
# database (chatd_autobahn_<pid>) is dropped on exit. Passes when every case is OK,
# NON-STRICT or INFORMATIONAL; prints the tally and the failures.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
log() { echo "autobahn.sh: $*" >&2; }
die() { log "$*"; exit 1; }

command -v python3 >/dev/null || die "python3 is missing (apt-get install python3)"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
    die "python3 is $(python3 --version 2>&1): kosoku needs Python 3.10 or later"
bin=${CHATD_BIN:-$ROOT/target/release/chatd}
[[ -x $bin ]] || cargo build --release --bin chatd

# The fuzzing client, pinned: its verdicts on these cases were checked against wstest's.
KOSOKU_VERSION=0.1.0
private=$ROOT/.local/kosoku
if [[ -n ${KOSOKU:-} ]]; then
    kosoku=("$KOSOKU")
else
    kosoku=(env "PYTHONPATH=$private" python3 -c 'import sys; sys.argv[0] = "kosoku"; from kosoku._cli import main; main()')
    if ! "${kosoku[@]}" -h >/dev/null 2>&1; then
        python3 -m pip --version >/dev/null 2>&1 || python3 -m ensurepip >/dev/null 2>&1 ||
            die "python3 has no pip (apt-get install python3-pip): cannot install kosoku"
        log "installing kosoku $KOSOKU_VERSION from PyPI into ${private#"$ROOT"/}"
        rm -rf "$private"
        python3 -m pip install -q --disable-pip-version-check --target "$private" \
            "kosoku==$KOSOKU_VERSION" >&2 || die "pip could not install kosoku $KOSOKU_VERSION"
        "${kosoku[@]}" -h >/dev/null 2>&1 || die "kosoku installed into $private but does not run"
    fi
fi

base=${TEST_PG_URL:-$(deploy/pg.sh ensure)}
db=chatd_autobahn_$$
out=$ROOT/.local/autobahn
rm -rf "$out" && mkdir -p "$out"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$out/chat.toml" <<TOML
[server]
listen = "127.0.0.1"
port = $port
event_loops = 1
[websocket]
echo_endpoint = true
max_message_bytes = 16777216
TOML
pid=
cleanup() {
    if [[ -n $pid ]]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    # The node's database, and the fixed-name one earlier versions of this script left.
    if command -v psql >/dev/null; then
        for d in "$db" chatd_autobahn; do
            psql -q "$base/postgres" -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 ||
                log "could not drop database $d"
        done
    else
        log "psql is missing: database $db is left on $base"
    fi
}
trap cleanup EXIT
DATABASE_URL=$base/$db RUST_LOG=error "$bin" --config "$out/chat.toml" >"$out/chatd.log" 2>&1 &
pid=$!
python3 - "$port" <<'PY' || { tail -20 "$out/chatd.log" >&2; die "chatd did not answer /health"; }
import sys, time, urllib.request
for _ in range(150):
    try:
        urllib.request.urlopen("http://127.0.0.1:%s/health" % sys.argv[1], timeout=1)
        sys.exit(0)
    except Exception:
        time.sleep(0.2)
sys.exit(1)
PY
log "running cases 1-7 and 10 against ws://127.0.0.1:$port/echo (database $db)"
cases=()
for c in 1 2 3 4 5 6 7 10; do cases+=(-i "$c.*"); done
# kosoku exits 1 when a case fails; the report below says which, so its status is not
# the verdict (a run that wrote no report is).
(cd "$out" && "${kosoku[@]}" "ws://127.0.0.1:$port/echo" "${cases[@]}" -o "$out/reports" \
    >"$out/kosoku.log" 2>&1) || true
[[ -f $out/reports/index.json ]] || { tail -20 "$out/kosoku.log" >&2; die "kosoku wrote no report"; }
python3 - "$out/reports/index.json" <<'PY'
import json, sys, collections
agents = json.load(open(sys.argv[1]))
if len(agents) != 1:
    sys.exit("autobahn: expected one agent in the report, got %s" % sorted(agents))
cases = next(iter(agents.values()))
tally = collections.Counter(c["behavior"] for c in cases.values())
bad = {k: (c["behavior"], c["behaviorClose"]) for k, c in cases.items()
       if c["behavior"] not in ("OK", "NON-STRICT", "INFORMATIONAL")
       or c["behaviorClose"] not in ("OK", "INFORMATIONAL", "NON-STRICT")}
print("autobahn: %d cases: %s" % (len(cases), ", ".join("%s %d" % kv for kv in sorted(tally.items()))))
for k in sorted(bad, key=lambda s: [int(x) for x in s.split(".")]):
    print("autobahn: FAILED case %s: behavior %s, close %s" % (k, bad[k][0], bad[k][1]))
sys.exit(1 if bad else 0)
PY
