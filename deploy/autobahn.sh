#!/usr/bin/env bash
# autobahn.sh - WebSocket conformance: the Autobahn test suite's fuzzing client (cases
# 1-7 and 10) against chatd's /echo endpoint, which uses exactly the framing code of /ws
# and exists only when [websocket] echo_endpoint = true.
#
#   deploy/autobahn.sh          uses $CHATD_BIN, else target/release/chatd (built if missing)
#
# The fuzzing client (wstest, package autobahntestsuite) runs only on Python 2.7. It is
# taken from, in order: $WSTEST (a wstest command); wstest on PATH; a Python 2.7 that can
# import it, either in its own site-packages or in .local/autobahn-py27; else it is
# installed from PyPI into .local/autobahn-py27 (pinned versions known to work, about
# 30 s) with the first Python 2.7 found ($PYTHON27, python2.7 on PATH, pyenv's
# ~/.pyenv/versions/2.7*, /usr/local/bin, /usr/bin). Debian 12 has no Python 2.7 package;
# without one the script says so and fails. Python 3 runs the port lookup and the report.
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
bin=${CHATD_BIN:-$ROOT/target/release/chatd}
[[ -x $bin ]] || cargo build --release --bin chatd

private=$ROOT/.local/autobahn-py27
# What `pip install` gets on a fresh machine, pinned: newer releases of some of these no
# longer install or import on Python 2.7.
requirements() {
    cat <<'REQ'
autobahntestsuite==25.10.1
autobahn==0.10.9
Twisted==19.10.0
txaio==2.1.0
six==1.16.0
zope.interface==4.6.0
attrs==21.4.0
Automat==22.10.0
constantly==15.1.0
hyperlink==21.0.0
idna==2.10
incremental==16.10.1
PyHamcrest==1.10.1
klein==17.10.0
Werkzeug==1.0.1
Jinja2==2.11.3
MarkupSafe==1.1.1
pyOpenSSL==19.1.0
cryptography==3.3.2
cffi==1.15.1
pycparser==2.21
enum34==1.1.10
ipaddress==1.0.23
service-identity==18.1.0
pyasn1==0.5.1
pyasn1-modules==0.3.0
typing==3.10.0.0
ujson==2.0.3
wsaccel==0.6.6
unittest2==1.1.0
linecache2==1.0.0
traceback2==1.4.0
REQ
}

# Every Python 2.7 interpreter on this machine, one path a line.
pythons27() {
    local c p
    for c in ${PYTHON27:-} python2.7 "$HOME"/.pyenv/versions/2.7*/bin/python2.7 \
        /root/.pyenv/versions/2.7*/bin/python2.7 /usr/local/bin/python2.7 /usr/bin/python2.7; do
        p=$(command -v "$c" 2>/dev/null) || continue
        "$p" -c 'import sys; sys.exit(sys.version_info[:2] != (2, 7))' 2>/dev/null || continue
        echo "$p"
    done | awk '!seen[$0]++'
}

# Sets `wstest` to a command array that runs the fuzzing client, or returns 1.
find_wstest() {
    local py
    if [[ -n ${WSTEST:-} ]]; then wstest=("$WSTEST"); return 0; fi
    if command -v wstest >/dev/null; then wstest=(wstest); return 0; fi
    for py in $(pythons27); do
        for extra in "" "$private"; do
            # site.addsitedir, not PYTHONPATH: it also reads the .pth files that make a
            # namespace package installed with --target (zope.interface) importable.
            if "$py" -c 'import site, sys; d = sys.argv[1]; d and site.addsitedir(d); import autobahntestsuite.wstest' "$extra" 2>/dev/null; then
                wstest=("$py" -c
                    'import site, sys; d = sys.argv.pop(1); d and site.addsitedir(d); from autobahntestsuite.wstest import run; sys.argv[0] = "wstest"; sys.exit(run())'
                    "$extra")
                return 0
            fi
        done
    done
    return 1
}

wstest=()
if ! find_wstest; then
    py=$(pythons27 | head -n 1)
    if [[ -z $py ]]; then
        die "no Python 2.7 found (looked at \$PYTHON27, python2.7 on PATH, ~/.pyenv/versions/2.7*, /usr/local/bin, /usr/bin).
  The Autobahn fuzzing client (autobahntestsuite) runs only on Python 2.7, and Debian 12 packages none.
  Provide one (e.g. 'pyenv install 2.7.18' where python.org is reachable) or name it with
  PYTHON27=/path/to/python2.7, and this script installs the suite from PyPI by itself;
  or name a working fuzzing client with WSTEST=/path/to/wstest."
    fi
    "$py" -m pip --version >/dev/null 2>&1 || "$py" -m ensurepip >/dev/null 2>&1 ||
        die "$py has no pip (and ensurepip failed): cannot install autobahntestsuite"
    log "installing autobahntestsuite for $py into ${private#"$ROOT"/}"
    rm -rf "$private"
    requirements >"$ROOT/.local/autobahn-requirements.txt"
    "$py" -m pip install -q --disable-pip-version-check --target "$private" \
        -r "$ROOT/.local/autobahn-requirements.txt" >&2 ||
        die "pip could not install autobahntestsuite for $py (see above)"
    find_wstest || die "autobahntestsuite installed into $private but does not import with $py"
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
cat >"$out/spec.json" <<JSON
{
  "outdir": "$out/reports",
  "servers": [{"agent": "chatd", "url": "ws://127.0.0.1:$port/echo"}],
  "cases": ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "10.*"],
  "exclude-cases": [],
  "exclude-agent-cases": {}
}
JSON
log "running cases 1-7 and 10 against ws://127.0.0.1:$port/echo (database $db)"
(cd "$out" && "${wstest[@]}" -m fuzzingclient -s spec.json >"$out/wstest.log" 2>&1) ||
    { tail -20 "$out/wstest.log" >&2; die "wstest failed"; }
[[ -f $out/reports/index.json ]] || { tail -20 "$out/wstest.log" >&2; die "wstest wrote no report"; }
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
