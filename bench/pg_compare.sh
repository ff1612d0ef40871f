#!/usr/bin/env bash
# shellcheck disable=SC2317  # cleanup runs from a trap
# pgbench select-only through TLS-terminating paths to one local PostgreSQL 15
# (TLS only, hostnossl rejected), all on this machine, in one run:
#
#   direct     pgbench --(TLS, sslmode=verify-full)--> postgres
#   dbward     pgbench --(plaintext)--> dbward (protocol: postgres) --(TLS, verify full)--> postgres
#   dbward-scram  pgbench --(TLS to dbward's own certificate, sslmode=require,
#              libpq's default channel_binding=prefer)--> dbward mediating
#              SCRAM (SCRAM-SHA-256-PLUS on both legs, verifiers by auth_query,
#              cached) --(TLS, verify full)--> postgres; scram_user only
#   pgbouncer  pgbench --(plaintext)--> pgbouncer (session pool, authenticates clients
#              itself from an auth_file) --(TLS, server_tls_sslmode=verify-full)--> postgres
#   stunnel    pgbench --(plaintext)--> stunnel (client, protocol = pgsql,
#              verifyChain, checkHost) --(TLS)--> postgres
#
# Each path is measured persistent (one connection per client for the whole
# run) and connect-per-tx (pgbench -C: a new connection, and for every path but
# pgbouncer a new backend TLS handshake, per transaction). The proxy's CPU
# seconds (utime+stime of the whole process from /proc/PID/stat) are measured
# around each run.
#
# stunnel's pgsql mode hands the client a plaintext connection while the server
# still offers SCRAM-SHA-256-PLUS, which libpq refuses; the stunnel+scram_user
# attempt is therefore expected to fail and its error is reported as a row.
# Since SCRAM costs a PBKDF2 on both ends of every connection, md5_user
# connect-per-tx rows are also run on every path so stunnel's -C row has
# something comparable.
#
# Usage: bench/pg_compare.sh BUILD_DIR       (dbward is BUILD_DIR/dbward)
#
# Environment:
#   BENCH_SECONDS=10     pgbench -T per measurement
#   BENCH_CLIENTS=8      pgbench -c;   BENCH_THREADS=2   pgbench -j
#   BENCH_SCALE=1        pgbench -i -s
#   BENCH_MD5_ALL=1      also run md5_user connect-per-tx on direct/dbward/pgbouncer
#   BENCH_KEEP_TMP=1     keep the temp dir (configs, certs, logs)
#   DBWARD, PGBOUNCER, STUNNEL   override binary paths
#
# Exit status: 0 if every measurement that is expected to work worked (the
# stunnel+SCRAM row is expected to fail), 1 otherwise, 2 on set-up errors.

set -euo pipefail

BUILD=${1:?usage: bench/pg_compare.sh BUILD_DIR}
BENCH_SECONDS=${BENCH_SECONDS:-10}
BENCH_CLIENTS=${BENCH_CLIENTS:-8}
BENCH_THREADS=${BENCH_THREADS:-2}
BENCH_SCALE=${BENCH_SCALE:-1}
BENCH_MD5_ALL=${BENCH_MD5_ALL:-1}
BENCH_KEEP_TMP=${BENCH_KEEP_TMP:-0}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DBWARD=${DBWARD:-$BUILD/dbward}
PGBOUNCER=${PGBOUNCER:-/usr/sbin/pgbouncer}
STUNNEL=${STUNNEL:-/usr/bin/stunnel4}

BENCH_NAME=pg_compare
DB_SCRIPT=pg-server.sh
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

[[ -x $DBWARD ]] || die "dbward not found at $DBWARD"
[[ -x $PGBOUNCER ]] || die "pgbouncer not found at $PGBOUNCER"
[[ -x $STUNNEL ]] || die "stunnel not found at $STUNNEL"
command -v pgbench >/dev/null || die "pgbench not found"
command -v psql >/dev/null || die "psql not found"
command -v ss >/dev/null || die "ss (iproute2) not found"

bench_init

# ---------------------------------------------------------------- set-up
bench_pki
bench_start_db PostgreSQL
PGPORT=$DB_PORT

su_psql() { psql -X -q -v ON_ERROR_STOP=1 -h "$TMP/db" -p "$PGPORT" -U postgres "$@"; }

# Plain libpq settings common to every connection: GSS encryption off so no
# path spends time probing for Kerberos credentials.
conninfo() {  # HOST PORT USER SSLPART
  echo "host=$1 port=$2 dbname=app user=$3 gssencmode=disable connect_timeout=10 $4"
}
password_of() { case $1 in scram_user) echo scram_pw ;; md5_user) echo md5_pw ;; esac; }

DIRECT_TLS="sslmode=verify-full sslrootcert=$CA"
log "pgbench -i -s $BENCH_SCALE over a direct verified TLS connection"
PGPASSWORD=scram_pw pgbench -i -q -s "$BENCH_SCALE" \
  "$(conninfo localhost "$PGPORT" scram_user "hostaddr=127.0.0.1 $DIRECT_TLS")" > "$TMP/init.log" 2>&1 ||
  { cat "$TMP/init.log" >&2; die "pgbench -i failed"; }
su_psql -d app -c "GRANT SELECT ON ALL TABLES IN SCHEMA public TO md5_user" ||
  die "granting md5_user SELECT failed"

# dbward
DBW_PORT=$(free_port)
DBWM_PORT=$(free_port)
mkdir -p "$TMP/dbward"
echo auth_pw > "$TMP/dbward/auth.pass"
cat > "$TMP/dbward/dbward.yaml" <<EOF
workers: 2
listeners:
  - name: pg
    protocol: postgres
    listen: 127.0.0.1:$DBW_PORT
    backend: 127.0.0.1:$PGPORT
    backend_tls:
      verify: full
      ca_file: $CA
      server_name: localhost
  - name: pg-scram
    protocol: postgres
    listen: 127.0.0.1:$DBWM_PORT
    backend: 127.0.0.1:$PGPORT
    backend_tls:
      verify: full
      ca_file: $CA
      server_name: localhost
    client_tls:
      cert_file: $CERTS/proxy.pem
      key_file: $CERTS/proxy.key
    scram:
      verifiers: auth_query
      auth_user: dbward_auth
      auth_password_file: $TMP/dbward/auth.pass
log:
  level: warn
  audit: $TMP/dbward/audit.log
EOF
"$DBWARD" check-config "$TMP/dbward/dbward.yaml" > "$TMP/dbward/check.log" 2>&1 ||
  { cat "$TMP/dbward/check.log" >&2; die "dbward check-config rejected the config"; }
"$DBWARD" run --config "$TMP/dbward/dbward.yaml" > "$TMP/dbward/dbward.log" 2>&1 &
DBW_PID=$!
LIVE[$DBW_PID]=dbward
wait_listen "$DBW_PORT" "$DBW_PID" dbward "$TMP/dbward/dbward.log"
wait_listen "$DBWM_PORT" "$DBW_PID" dbward "$TMP/dbward/dbward.log"
log "dbward pid $DBW_PID on 127.0.0.1:$DBW_PORT"

# pgbouncer: clients authenticate against auth_file. With auth_type = md5 a
# user whose entry is a SCRAM secret gets SCRAM, so scram_user does SCRAM with
# pgbouncer (and pgbouncer reuses the client's SCRAM keys towards the server)
# while md5_user does md5.
PGB_PORT=$(free_port)
PGB=$TMP/pgbouncer
mkdir -p "$PGB"
SCRAM_SECRET=$(su_psql -d postgres -At -c "SELECT rolpassword FROM pg_authid WHERE rolname = 'scram_user'")
MD5_SECRET=$(su_psql -d postgres -At -c "SELECT rolpassword FROM pg_authid WHERE rolname = 'md5_user'")
[[ $SCRAM_SECRET == SCRAM-SHA-256\$* ]] || die "unexpected scram_user secret in pg_authid: ${SCRAM_SECRET:0:20}"
[[ $MD5_SECRET == md5* ]] || die "unexpected md5_user secret in pg_authid"
printf '"scram_user" "%s"\n"md5_user" "%s"\n' "$SCRAM_SECRET" "$MD5_SECRET" > "$PGB/userlist.txt"
cat > "$PGB/pgbouncer.ini" <<EOF
[databases]
app = host=127.0.0.1 port=$PGPORT dbname=app

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = md5
auth_file = $PGB/userlist.txt
pool_mode = session
max_client_conn = 200
default_pool_size = 20
server_tls_sslmode = verify-full
server_tls_ca_file = $CA
client_tls_sslmode = disable
logfile = $PGB/pgbouncer.log
log_connections = 0
log_disconnections = 0
EOF
chown -R postgres: "$PGB"
chmod 600 "$PGB/userlist.txt"
# pgbouncer refuses to run as root; -u drops to postgres in the same process.
if [[ $(id -u) -eq 0 ]]; then PGB_USER=(-u postgres); else PGB_USER=(); fi
"$PGBOUNCER" "${PGB_USER[@]}" "$PGB/pgbouncer.ini" > "$PGB/stdout.log" 2>&1 &
PGB_PID=$!
LIVE[$PGB_PID]=pgbouncer
wait_listen "$PGB_PORT" "$PGB_PID" pgbouncer "$PGB/stdout.log"
log "pgbouncer pid $PGB_PID on 127.0.0.1:$PGB_PORT"

# stunnel
ST_PORT=$(free_port)
ST=$TMP/stunnel
mkdir -p "$ST"
cat > "$ST/stunnel.conf" <<EOF
foreground = yes
pid =
debug = warning
output = $ST/stunnel.log

[pg]
client = yes
accept = 127.0.0.1:$ST_PORT
connect = 127.0.0.1:$PGPORT
protocol = pgsql
verifyChain = yes
CAfile = $CA
checkHost = localhost
EOF
"$STUNNEL" "$ST/stunnel.conf" > "$ST/stdout.log" 2>&1 &
ST_PID=$!
LIVE[$ST_PID]=stunnel
wait_listen "$ST_PORT" "$ST_PID" stunnel "$ST/stdout.log"
log "stunnel pid $ST_PID on 127.0.0.1:$ST_PORT"

# ---------------------------------------------------------------- runs
# measure PATH USER MODE EXPECT
#   MODE: persistent | connect-per-tx;  EXPECT: ok | fail (failure is the point)
measure() {
  local path=$1 user=$2 mode=$3 expect=${4:-ok}
  local host port ssl pid="" extra=() out rc tps lat cpu="-" t0=0 t1 label
  case $path in
    direct)    host=localhost; port=$PGPORT; ssl="hostaddr=127.0.0.1 $DIRECT_TLS" ;;
    dbward)    host=127.0.0.1; port=$DBW_PORT; ssl="sslmode=disable"; pid=$DBW_PID ;;
    dbward-scram) host=localhost; port=$DBWM_PORT; ssl="hostaddr=127.0.0.1 sslmode=require"; pid=$DBW_PID ;;
    pgbouncer) host=127.0.0.1; port=$PGB_PORT; ssl="sslmode=disable"; pid=$PGB_PID ;;
    stunnel)   host=127.0.0.1; port=$ST_PORT; ssl="sslmode=disable"; pid=$ST_PID ;;
  esac
  if [[ $mode == connect-per-tx ]]; then extra=(-C); fi
  label="$path/$user/$mode"
  log "run $label (${BENCH_SECONDS}s)"
  out=$TMP/run.$path.$user.$mode.log
  if [[ -n $pid ]]; then
    kill -0 "$pid" 2>/dev/null || { ROWS+=("$path|$user|$mode|FAIL|-|-|proxy process is gone"); FAILED=1; return; }
    t0=$(cpu_ticks "$pid")
  fi
  rc=0
  PGPASSWORD=$(password_of "$user") timeout $((BENCH_SECONDS + 60)) \
    pgbench -S -n -c "$BENCH_CLIENTS" -j "$BENCH_THREADS" -T "$BENCH_SECONDS" -M prepared "${extra[@]}" \
    "$(conninfo "$host" "$port" "$user" "$ssl")" > "$out" 2>&1 || rc=$?
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    t1=$(cpu_ticks "$pid")
    cpu=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", d / hz }')
  fi
  tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$out" | head -1)
  lat=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$out" | head -1)
  if [[ $rc -eq 0 && -n $tps && -n $lat ]] && ! grep -q 'aborted' "$out"; then
    ROWS+=("$path|$user|$mode|$(printf '%.0f' "$tps")|$lat|$cpu|")
    if [[ $expect == fail ]]; then log "$label was expected to fail but worked"; fi
  else
    local err
    err=$(grep -m1 -E 'error|FATAL|failed' "$out" || tail -1 "$out")
    err=${err#pgbench: error: }
    ROWS+=("$path|$user|$mode|FAIL|-|$cpu|$err")
    if [[ $expect == ok ]]; then
      FAILED=1
      log "$label failed (rc=$rc):"; sed 's/^/    /' "$out" >&2
    fi
  fi
}

T_START=$SECONDS
for mode in persistent connect-per-tx; do
  for path in direct dbward dbward-scram pgbouncer; do
    measure "$path" scram_user "$mode"
  done
  measure stunnel md5_user "$mode"
done
if [[ $BENCH_MD5_ALL == 1 ]]; then
  for path in direct dbward pgbouncer; do
    measure "$path" md5_user connect-per-tx
  done
fi
# The known stunnel pgsql + SCRAM-SHA-256-PLUS failure: a short attempt.
BENCH_SECONDS=2 measure stunnel scram_user persistent fail

# ---------------------------------------------------------------- report
printf '\npgbench -S -M prepared -c %s -j %s -T %s, scale %s, %s CPUs; PostgreSQL 15 TLS-only on 127.0.0.1\n' \
  "$BENCH_CLIENTS" "$BENCH_THREADS" "$BENCH_SECONDS" "$BENCH_SCALE" "$(nproc)"
printf 'dbward: %s | %s | %s\n\n' "$("$DBWARD" --version 2>&1 | head -1)" \
  "$("$PGBOUNCER" --version 2>&1 | head -1)" "$("$STUNNEL" -version 2>&1 | grep -m1 '^stunnel')"
{
  echo "path|user|mode|TPS|avg latency ms|proxy CPU s|note"
  printf '%s\n' "${ROWS[@]}"
} | awk -F'|' '
  { for (i = 1; i <= NF; i++) { cell[NR, i] = $i; if (length($i) > w[i] && i < 7) w[i] = length($i) } n = NR; if (NF > nf) nf = NF }
  END {
    for (r = 1; r <= n; r++) {
      line = ""
      for (i = 1; i <= 6; i++) line = line sprintf("%-*s | ", w[i], cell[r, i])
      line = line cell[r, 7]
      sub(/[ |]+$/, "", line)
      print line
    }
  }'
printf '\nproxy CPU s = utime+stime of the proxy process during that run. pgbouncer connect-per-tx\n'
printf 'reuses pooled server connections, so it skips the backend TLS handshake the others pay.\n'
log "measurements took $((SECONDS - T_START)) s"
exit "$FAILED"
