#!/usr/bin/env bash
# Runs the web app's real-browser test (tests/browser/test_app.py: selenium + headless
# Chromium) against a chatd node it starts itself.
#   tests/browser/run.sh      uses target/release/chatd (cargo build --release --bin chatd)
#                             or $CHATD_BIN, and PostgreSQL at $TEST_PG_URL
# As root, installs what is missing (chromium, chromium-driver, npm, selenium); otherwise
# says exactly what to install and fails. axe-core (the accessibility check) is fetched
# with npm into target/browser-test. Screenshots of the run go to a temporary directory
# ($SHOTS_DIR to choose it); docs/screenshots/ is made by tests/browser/screenshots.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

fail() { echo "tests/browser/run.sh: $*" >&2; exit 1; }

CHROME_BIN=${CHROME_BIN:-/usr/bin/chromium}
CHROMEDRIVER=${CHROMEDRIVER:-/usr/bin/chromedriver}
export CHROME_BIN CHROMEDRIVER

apt_missing=()
[[ -x $CHROME_BIN ]] || apt_missing+=(chromium)
[[ -x $CHROMEDRIVER ]] || apt_missing+=(chromium-driver)
command -v psql >/dev/null || apt_missing+=(postgresql-client)
command -v python3 >/dev/null || apt_missing+=(python3 python3-pip)
command -v npm >/dev/null || apt_missing+=(npm)
pip_missing=()
python3 -c 'import selenium' 2>/dev/null || pip_missing+=(selenium)

if (( ${#apt_missing[@]} + ${#pip_missing[@]} )); then
    if [[ $(id -u) -eq 0 ]]; then
        if (( ${#apt_missing[@]} )); then
            echo "tests/browser/run.sh: installing ${apt_missing[*]}" >&2
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_missing[@]}" >/dev/null
        fi
        if ! python3 -c 'import selenium' 2>/dev/null; then
            echo "tests/browser/run.sh: installing selenium (pip)" >&2
            python3 -m pip --version >/dev/null 2>&1 \
                || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >/dev/null; }
            python3 -m pip install -q selenium 2>/dev/null || python3 -m pip install -q --break-system-packages selenium
        fi
    else
        msg="missing:"
        (( ${#apt_missing[@]} )) && msg+=" apt-get install -y ${apt_missing[*]};"
        (( ${#pip_missing[@]} )) && msg+=" pip install ${pip_missing[*]};"
        fail "$msg run those as root (or run this script as root), then again"
    fi
fi

export CHATD_BIN=${CHATD_BIN:-$PWD/target/release/chatd}
[[ -x $CHATD_BIN ]] || fail "no chatd binary at $CHATD_BIN: run 'cargo build --release --bin chatd' or set CHATD_BIN"
export TEST_PG_URL=${TEST_PG_URL:-postgres://postgres@127.0.0.1:5432}
psql "$TEST_PG_URL/postgres" -qAtc 'select 1' >/dev/null 2>&1 \
    || fail "cannot reach PostgreSQL at $TEST_PG_URL (set TEST_PG_URL)"

# axe-core (the accessibility check) comes from npm at test time, into target/ (ignored),
# never into the tree.
AXE_DIR=${AXE_DIR:-$PWD/target/browser-test}
export AXE_JS=$AXE_DIR/node_modules/axe-core/axe.min.js
if [[ ! -f $AXE_JS ]]; then
    command -v npm >/dev/null || fail "npm is missing (Debian: apt-get install npm): the accessibility check fetches axe-core with it"
    echo "tests/browser/run.sh: fetching axe-core (npm)" >&2
    npm install --prefix "$AXE_DIR" --no-save --no-package-lock --no-audit --no-fund --silent axe-core@4 >/dev/null \
        || fail "npm install axe-core failed"
fi

if [[ ${1:-} == --screenshots ]]; then
    shift
    exec python3 tests/browser/screenshots.py "$@"
fi
exec python3 tests/browser/test_app.py "$@"
