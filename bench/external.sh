#!/usr/bin/env bash
# What an external token costs: GET /rooms (20 rooms) with chatd's own access token and
# with a token of the product's identity provider, on the same node, HS256 first, then
# (another start) RS256 with a PEM public key. The external user is created by one
# request before the runs; the runs then need its key and identity from memory only: the
# users table's scan counters, read before and after each run, show whether any request
# looked the user up.
#
#   bench/external.sh
#
# Environment: CHATD_BIN (target/release/chatd), TEST_PG_URL
# (postgres://postgres@127.0.0.1:5432), PORT (3495), DURATION (10), CONNECTIONS (64).
set -euo pipefail
# wrk measures the routes: stop at once, saying what to install, rather than halfway.
command -v wrk >/dev/null || { echo "external.sh: wrk is missing (apt-get install wrk)" >&2; exit 1; }
cd "$(dirname "$0")/.."
bin=${CHATD_BIN:-target/release/chatd}
pg=${TEST_PG_URL:-postgres://postgres@127.0.0.1:5432}
port=${PORT:-3495}
duration=${DURATION:-10}
conns=${CONNECTIONS:-64}
db=chatd_external_bench
iss=https://id.bench.example
aud=chatd-bench
secret=bench-provider-secret-0123456789abcdefghijk
dir=$(mktemp -d /tmp/chatd-external.XXXXXX)
pid=
stop() { [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; pid=; }
cleanup() {
    stop
    rm -rf "$dir"
    psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
q() { psql -X -q -v ON_ERROR_STOP=1 "$pg/$db" -Atc "$1"; }
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
# mint ALG: a token of the provider for user bench|1, valid for an hour.
mint() {
    local h p sig
    h=$(printf '{"alg":"%s","typ":"JWT"}' "$1" | b64url)
    p=$(printf '{"iss":"%s","aud":"%s","sub":"bench|1","preferred_username":"bencher","iat":%d,"exp":%d}' \
        "$iss" "$aud" "$(date +%s)" "$(($(date +%s) + 3600))" | b64url)
    if [[ $1 == HS256 ]]; then
        sig=$(printf '%s' "$h.$p" | openssl dgst -sha256 -hmac "$secret" -binary | b64url)
    else
        sig=$(printf '%s' "$h.$p" | openssl dgst -sha256 -sign "$dir/key.pem" -binary | b64url)
    fi
    printf '%s.%s.%s' "$h" "$p" "$sig"
}
start() {
    CHATD_CONFIG=$1 DATABASE_URL=$pg/$db PORT=$port RUST_LOG=warn \
        JWT_ACCESS_SECRET=external-access-secret-0123456789abcdefgh \
        JWT_REFRESH_SECRET=external-refresh-secret-0123456789abcdefg \
        "$bin" >"$dir/log" 2>&1 &
    pid=$!
    for _ in $(seq 1 150); do curl -sf "http://127.0.0.1:$port/ready" >/dev/null && return; sleep 0.1; done
    cat "$dir/log"; exit 1
}
# Backends report their table statistics when idle, within 10 s (PostgreSQL 15).
scans() { sleep 11; q "SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_user_tables WHERE relname = 'users'"; }
run() {
    local before after line
    before=$(scans)
    line=$(wrk -t2 -c"$conns" -d"${duration}s" --latency -H "Authorization: Bearer $2" "http://127.0.0.1:$port/rooms" |
        awk '/Requests\/sec/ { rps = $2 } / 50%/ { p50 = $2 } / 99%/ { p99 = $2 } END { printf "req/s %s p50 %s p99 %s", rps, p50, p99 }')
    after=$(scans)
    printf '%-28s %s  users-table scans during the run: %s\n' "$1" "$line" "$((after - before))"
}

openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/key.pem" 2>/dev/null
openssl pkey -in "$dir/key.pem" -pubout -out "$dir/key.pub"
sed '/^\[auth.external\]/,$d' loadtest/server.toml >"$dir/base.toml"
grep -q '^\[auth\]' "$dir/base.toml" || printf '\n[auth]\n' >>"$dir/base.toml"
{ cat "$dir/base.toml"; printf '\n[auth.external]\nissuer = "%s"\naudience = "%s"\nhs256_secret = "%s"\n' "$iss" "$aud" "$secret"; } >"$dir/hs.toml"
{ cat "$dir/base.toml"; printf '\n[auth.external]\nissuer = "%s"\naudience = "%s"\nalgorithm = "RS256"\npublic_key_pem = """\n%s\n"""\n' "$iss" "$aud" "$(cat "$dir/key.pub")"; } >"$dir/rs.toml"

psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
for variant in hs rs; do
    start "$dir/$variant.toml"
    own=$(curl -s "http://127.0.0.1:$port/auth/register" -H 'content-type: application/json' \
        -d "{\"username\":\"own-$variant\",\"email\":\"own-$variant@example.com\",\"password\":\"password123\"}" |
        sed -E 's/.*"accessToken":"([^"]+)".*/\1/')
    if [[ $variant == hs ]]; then
        for i in $(seq 1 20); do
            curl -sf "http://127.0.0.1:$port/rooms" -H "authorization: Bearer $own" -H 'content-type: application/json' \
                -d "{\"name\":\"bench-$i\"}" >/dev/null
        done
        ext=$(mint HS256)
    else
        ext=$(mint RS256)
    fi
    curl -sf "http://127.0.0.1:$port/me" -H "authorization: Bearer $ext" | grep -q '"username":"bencher"'
    run "own token ($variant node)" "$own"
    run "external $( [[ $variant == hs ]] && echo HS256 || echo RS256 )" "$ext"
    echo "  external users created: $(curl -s "http://127.0.0.1:$port/metrics" | awk '/^chatd_external_users_created_total/ { print $2 }'), 500s: $(curl -s "http://127.0.0.1:$port/metrics" | awk '/^chatd_http_500_total/ { print $2 }')"
    stop
done
