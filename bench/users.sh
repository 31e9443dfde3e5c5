#!/usr/bin/env bash
# The user directory at scale: USERS (1 M) accounts generated in SQL (usernames of three
# syllables and a number, 4 in 7 with a "First Last" display name), then wrk measures
# `GET /users?q=` for prefixes from one letter (about 1 user in 20 matches) to one that
# matches a few, and one that matches none: one connection, then four; p50 and p99.
#
#   bench/users.sh
#
# Environment: CHATD_BIN (target/release/chatd), TEST_PG_URL
# (postgres://postgres@127.0.0.1:5432), USERS, PORT (3490), KEEP=1 keeps the database.
set -euo pipefail
# wrk measures the routes: stop at once, saying what to install, rather than halfway.
command -v wrk >/dev/null || { echo "users.sh: wrk is missing (apt-get install wrk)" >&2; exit 1; }
cd "$(dirname "$0")/.."
bin=${CHATD_BIN:-target/release/chatd}
pg=${TEST_PG_URL:-postgres://postgres@127.0.0.1:5432}
total=${USERS:-1000000}
port=${PORT:-3490}
db=chatd_users_bench
pid=
cleanup() {
    [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null || true
    [[ ${KEEP:-0} == 1 ]] || psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
q() { psql -X -q -v ON_ERROR_STOP=1 "$pg/$db" -Atc "$1"; }

psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
CHATD_CONFIG=loadtest/server.toml DATABASE_URL=$pg/$db PORT=$port RUST_LOG=warn \
    JWT_ACCESS_SECRET=users-access-secret-0123456789abcdefghij \
    JWT_REFRESH_SECRET=users-refresh-secret-0123456789abcdefghi \
    "$bin" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 150); do curl -sf "http://127.0.0.1:$port/ready" >/dev/null && break; sleep 0.1; done
token=$(curl -s "http://127.0.0.1:$port/auth/register" -H 'content-type: application/json' \
    -d '{"username":"directory","email":"directory@example.com","password":"password123"}' |
    sed -E 's/.*"accessToken":"([^"]+)".*/\1/')
t=$(date +%s.%N)
# Usernames are ASCII and display names use a few accented letters: translate() (accents
# off) then lower() of ASCII give exactly the server's folded form, whatever the
# database's locale, so SQL can fill the keys.
q "WITH syl AS (SELECT ARRAY['ka','ro','mi','ta','ne','lu','sa','vo','ri','de','po','ba','ze','chi','fo',
                             'gu','ha','ji','ko','le','ma','nu','pe','qui','ru','si','tu','va','wa','xe',
                             'yo','zu','al','en','ir','or','un','el','an','is'] s),
        first AS (SELECT ARRAY['Ada','Ben','Cleo','Dmitri','Elena','Farah','Gus','Hana','Ivan','Jade',
                               'Kofi','Lena','Marco','Nia','Omar','Priya','Quinn','Rosa','Sven','Tara',
                               'Umar','Vera','Wen','Xavi','Yara','Zoë','Åsa','Émile','Chen','Dana'] f),
        last AS (SELECT ARRAY['Smith','Garcia','Okafor','Tanaka','Müller','Rossi','Kowalski','Haddad',
                              'Nguyen','Silva','Novak','Jensen','Kim','Dubois','Ivanova','Mensah',
                              'Lopez','Singh','Cohen','Berg','Costa','Moreau','Sato','Ali','Park'] l),
        gen AS (SELECT i, s[1 + (i * 7) % 40] || s[1 + (i / 40 * 13) % 40] || s[1 + (i / 1600 * 17) % 40] || '_' || i AS name,
                       CASE WHEN i % 7 < 4 THEN f[1 + (i * 11) % 30] || ' ' || l[1 + (i * 3) % 25] END AS display
                FROM syl, first, last, generate_series(1, $total) i)
   INSERT INTO users (id, username, username_key, username_fold, display_name, display_fold,
                      external_issuer, external_id, created_at)
   SELECT gen_random_uuid(), name, lower(name), lower(name), display,
          lower(translate(display, 'ÅÄËÉÈÖÜåäëéèöü', 'AAEEEOUaaeeeou')), 'https://bench.example', name, now()
   FROM gen"
q "VACUUM ANALYZE users" >/dev/null
echo "loaded $(q "SELECT count(*) FROM users") users in $(echo "$(date +%s.%N) - $t" | bc) s; users table $(q "SELECT pg_size_pretty(pg_total_relation_size('users'))")"
wrk_line() {
    wrk -t1 -c"$1" -d5s --latency -H "Authorization: Bearer $token" "http://127.0.0.1:$port$2" |
        awk '/Requests\/sec/ { rps = $2 } / 50%/ { p50 = $2 } / 99%/ { p99 = $2 } END { printf "req/s %s p50 %s p99 %s\n", rps, p50, p99 }'
}
# Prefixes from one letter to a whole name, usernames and display names, with accents.
some=$(q "SELECT username FROM users WHERE username LIKE 'ka%' ORDER BY username_fold OFFSET 5000 LIMIT 1")
elena=$(q "SELECT display_fold FROM users WHERE display_fold LIKE 'elena %' LIMIT 1")
enc() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$1"; }
for prefix in k ka kar "${some:0:7}" "$some" elena "${elena:0:7}" "zoë" "ÅSA" "émile ok" zzz; do
    folded=$(printf '%s' "$prefix" | python3 -c 'import sys, unicodedata as u; s = sys.stdin.read().strip(); print(u.normalize("NFC", "".join(c for c in u.normalize("NFKD", s) if not u.combining(c)).lower()))')
    n=$(q "SELECT count(*) FROM users WHERE username_fold LIKE '$folded%' OR display_fold LIKE '$folded%'")
    for c in 1 4; do
        printf 'q=%-14s matches %-7s c=%s ' "$prefix" "$n" "$c"
        wrk_line "$c" "/users?q=$(enc "$prefix")&limit=20"
    done
done
