#!/usr/bin/env bash
# autobahn.sh - WebSocket conformance: the Autobahn test suite's fuzzing client (cases
# 1-7 and 10) against chatd's /echo endpoint, which uses exactly the framing code of /ws
# and exists only when [websocket] echo_endpoint = true.
#
#   deploy/autobahn.sh          uses $CHATD_BIN, else target/release/chatd (built if missing)
#
# Needs Python 2.7 for wstest (autobahntestsuite); installs the suite with pip when it is
# missing. PostgreSQL: $TEST_PG_URL, else whatever deploy/pg.sh finds or starts. Passes when
# every case is OK, NON-STRICT or INFORMATIONAL; prints the tally and the failures.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
log() { echo "autobahn.sh: $*" >&2; }

bin=${CHATD_BIN:-$ROOT/target/release/chatd}
[[ -x $bin ]] || cargo build --release --bin chatd

# wstest: on PATH, in a pyenv Python 2.7, or installed into the first Python 2.7 found.
wstest=$(command -v wstest || true)
if [[ -z $wstest ]]; then
    for py in python2.7 /root/.pyenv/versions/2.7*/bin/python2.7 /usr/bin/python2.7; do
        p=$(command -v "$py" 2>/dev/null || true)
        [[ -n $p ]] && "$p" --version >/dev/null 2>&1 || continue
        if [[ ! -x $(dirname "$p")/wstest ]]; then
            log "installing autobahntestsuite for $p"
            "$p" -m pip install -q autobahntestsuite >&2 || continue
        fi
        [[ -x $(dirname "$p")/wstest ]] && { wstest=$(dirname "$p")/wstest; break; }
    done
fi
[[ -n $wstest ]] || { log "wstest needs Python 2.7 (e.g. pyenv install 2.7.18) and 'python2.7 -m pip install autobahntestsuite'"; exit 1; }

base=${TEST_PG_URL:-$(deploy/pg.sh ensure)}
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
DATABASE_URL=$base/chatd_autobahn RUST_LOG=error "$bin" --config "$out/chat.toml" >"$out/chatd.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    sleep 0.2
done
cat >"$out/spec.json" <<JSON
{
  "outdir": "$out/reports",
  "servers": [{"agent": "chatd", "url": "ws://127.0.0.1:$port/echo"}],
  "cases": ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "10.*"],
  "exclude-cases": [],
  "exclude-agent-cases": {}
}
JSON
log "running cases 1-7 and 10 against ws://127.0.0.1:$port/echo"
(cd "$out" && "$wstest" -m fuzzingclient -s spec.json >"$out/wstest.log" 2>&1) || { tail -20 "$out/wstest.log" >&2; exit 1; }
python3 - "$out/reports/index.json" <<'PY'
import json, sys, collections
cases = json.load(open(sys.argv[1]))["chatd"]
tally = collections.Counter(c["behavior"] for c in cases.values())
bad = {k: (c["behavior"], c["behaviorClose"]) for k, c in cases.items()
       if c["behavior"] not in ("OK", "NON-STRICT", "INFORMATIONAL")
       or c["behaviorClose"] not in ("OK", "INFORMATIONAL", "NON-STRICT")}
print("autobahn: %d cases: %s" % (len(cases), ", ".join("%s %d" % kv for kv in sorted(tally.items()))))
for k in sorted(bad, key=lambda s: [int(x) for x in s.split(".")]):
    print("autobahn: FAILED case %s: behavior %s, close %s" % (k, bad[k][0], bad[k][1]))
sys.exit(1 if bad else 0)
PY
