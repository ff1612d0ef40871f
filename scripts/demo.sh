#!/usr/bin/env bash
# The README's demo command. Installs what is missing, builds dbward, then shows
# the main job against a real local PostgreSQL:
#   1. a PostgreSQL 15 server that accepts only TLS connections (hostnossl reject);
#   2. a legacy client, psql with sslmode=disable, is refused by that server directly;
#   3. the same client through dbward works, and the server reports (pg_stat_ssl)
#      a TLS session that dbward validated against the CA and hostname;
#   4. the audit event records the client's trust bypass (plaintext);
#   5. a listener pointed at the wrong server name fails closed with an error
#      psql prints, naming the cause and the fix.
# Stops everything it started and removes its temporary files.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
BUILD_DIR=${BUILD_DIR:-$root/build} "$root/scripts/build.sh" > /dev/null
dbward=${BUILD_DIR:-$root/build}/dbward

work=$(mktemp -d /tmp/dbward-demo-XXXXXX)
chmod 755 "$work"
pg_dir=/tmp/dbward-demo-pg-$$
dbward_pid=""
cleanup() {
  [[ -n $dbward_pid ]] && kill "$dbward_pid" 2>/dev/null && wait "$dbward_pid" 2>/dev/null
  "$root/tests/pg-server.sh" stop "$pg_dir" || true
  rm -rf "$work" "$pg_dir"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do ss -Hltn "sport = :$1" | grep -q . && return 0; sleep 0.05; done; return 1; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "throwaway CA and certificates (openssl) in $work/pki"
"$root/tests/gen-test-certs.sh" "$work/pki" > /dev/null
ls "$work/pki" | grep -E '^(ca|server|proxy)\.pem$' | sed 's/^/   /'

pg_port=$(free_port); front=$(free_port); front_bad=$(free_port)
step "PostgreSQL 15 on 127.0.0.1:$pg_port, TLS only (pg_hba: hostnossl ... reject)"
"$root/tests/pg-server.sh" start "$pg_dir" "$pg_port" "$work/pki"
grep -E '^host' "$pg_dir/data/pg_hba.conf" | sed 's/^/   /'

step "a legacy client (sslmode=disable) straight to the server is refused"
psql "host=127.0.0.1 port=$pg_port dbname=app user=scram_user password=scram_pw sslmode=disable" -Xc 'select 1' 2>&1 |
  sed 's/^/   /' || true

cat > "$work/dbward.yaml" <<YAML
workers: 2
listeners:
  - name: orders
    protocol: postgres
    listen: 127.0.0.1:$front
    backend: 127.0.0.1:$pg_port
    backend_tls:
      verify: full
      ca_file: pki/ca.pem
      server_name: localhost
      min_version: "1.3"
    client_tls:
      cert_file: pki/proxy.pem
      key_file: pki/proxy.key
  - name: misconfigured
    protocol: postgres
    listen: 127.0.0.1:$front_bad
    backend: 127.0.0.1:$pg_port
    backend_tls:
      ca_file: pki/ca.pem
      server_name: db.internal
log:
  level: info
  audit: audit.jsonl
YAML
step "dbward check-config, then dbward run"
"$dbward" check-config "$work/dbward.yaml" | sed 's/^/   /'
"$dbward" run --config "$work/dbward.yaml" 2> "$work/dbward.log" &
dbward_pid=$!
wait_port "$front"; wait_port "$front_bad"

step "the same legacy client through dbward (127.0.0.1:$front): what the server sees in pg_stat_ssl"
psql "host=127.0.0.1 port=$front dbname=app user=scram_user password=scram_pw sslmode=disable application_name=legacy-app" -X \
  -c "select pid, ssl, version, cipher, bits from pg_stat_ssl where pid = pg_backend_pid()" | sed 's/^/   /'

step "dbward pointed at the wrong server name: psql shows why it failed closed"
psql "host=127.0.0.1 port=$front_bad dbname=app user=scram_user password=scram_pw sslmode=disable" -Xc 'select 1' 2>&1 |
  sed 's/^/   /' || true

kill "$dbward_pid"; wait "$dbward_pid" 2>/dev/null || true; dbward_pid=""
step "audit events (one JSON line per connection)"
python3 - "$work/audit.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    keys = ["listener", "client", "user", "database", "application", "client_encryption", "trust_bypass",
            "bypass_reason", "backend_tls", "backend_cipher", "backend_verified", "outcome", "cause", "error"]
    print("   " + json.dumps({k: e.get(k) for k in keys}))
PY
step "dbward log"
sed 's/^/   /' "$work/dbward.log"
