#!/usr/bin/env bash
# shellcheck disable=SC2317  # cleanup runs from a trap
# sysbench oltp_read_only through TLS paths to one local MariaDB 10.11
# (require_secure_transport=ON), all on this machine, in one run:
#
#   direct   sysbench --(TLS, --mysql-ssl=on)--> mariadb
#   dbward   sysbench --(plaintext)--> dbward (protocol: mysql) --(TLS, verify full)--> mariadb
#   dbward-noresume  the same with backend_tls.session_resumption: false (connect rows only)
#   stunnel  measured only if this stunnel has `protocol = mysql` (probed at
#            start-up; Debian's stunnel 5.x has none, so it is reported as a note)
#
# No off-the-shelf TLS terminator is measured: MySQL's TLS starts inside the
# protocol (plaintext server greeting, then the client's SSLRequest packet), so
# a plain TLS client such as haproxy `server ... ssl verify required` or
# stunnel without a mysql protocol mode cannot do the upgrade.
#
# sysbench 1.0.20 has no --mysql-ssl-ca: with --mysql-ssl=on it calls
# mysql_ssl_set(con, "client-key.pem", "client-cert.pem", "cacert.pem", ...)
# with paths relative to its working directory, and fails with "TLS/SSL error:
# No such file or directory" if any is missing. So sysbench runs in a directory
# holding cacert.pem (the test CA) and a throwaway client certificate signed by
# the test CA. libmariadb then verifies the server's chain against cacert.pem
# (a probe with an unrelated CA is run and must fail) but, since sysbench never
# sets MYSQL_OPT_SSL_VERIFY_SERVER_CERT, not the server's host name.
#
# sysbench 1.0.20 has no --reconnect either; a connect-per-transaction set is
# run only if `sysbench oltp_read_only help` lists it.
#
# The proxy's CPU seconds (utime+stime of the whole process from
# /proc/PID/stat) are measured around each run.
#
# Usage: bench/mysql_compare.sh BUILD_DIR     (dbward is BUILD_DIR/dbward)
#
# Environment:
#   BENCH_SECONDS=10       sysbench --time per measurement
#   BENCH_THREADS=8        sysbench --threads
#   BENCH_TABLES=4         sysbench --tables;  BENCH_TABLE_SIZE=10000  --table-size
#   BENCH_KEEP_TMP=1       keep the temp dir (configs, certs, logs)
#   DBWARD, STUNNEL        override binary paths
#
# Exit status: 0 if every measurement worked, 1 otherwise, 2 on set-up errors.

set -euo pipefail

BUILD=${1:?usage: bench/mysql_compare.sh BUILD_DIR}
BENCH_SECONDS=${BENCH_SECONDS:-10}
BENCH_THREADS=${BENCH_THREADS:-8}
BENCH_TABLES=${BENCH_TABLES:-4}
BENCH_TABLE_SIZE=${BENCH_TABLE_SIZE:-10000}
BENCH_KEEP_TMP=${BENCH_KEEP_TMP:-0}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DBWARD=${DBWARD:-$BUILD/dbward}
STUNNEL=${STUNNEL:-/usr/bin/stunnel4}

BENCH_NAME=mysql_compare
DB_SCRIPT=mariadb-server.sh
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

[[ -x $DBWARD ]] || die "dbward not found at $DBWARD"
command -v sysbench >/dev/null || die "sysbench not found"
command -v openssl >/dev/null || die "openssl not found"
command -v ss >/dev/null || die "ss (iproute2) not found"

bench_init

# ---------------------------------------------------------------- set-up
bench_pki
bench_start_db MariaDB
MYPORT=$DB_PORT
MY_VERSION=$(mariadb --no-defaults --socket="$TMP/db/mysqld.sock" -u "$([[ $(id -u) -eq 0 ]] && echo root || id -un)" \
  --batch --skip-column-names -e 'SELECT VERSION()' 2>/dev/null || echo unknown)

# sysbench's TLS files (fixed names, read from its working directory).
# mint_client_dir DIR CAFILE: cacert.pem = CAFILE, client cert signed by the test CA.
mint_client_dir() {
  local d=$1
  mkdir -p "$d"
  cp "$2" "$d/cacert.pem"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$d/client-key.pem" 2>/dev/null
  openssl req -new -key "$d/client-key.pem" -subj "/CN=sysbench-client" -out "$d/client.csr" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' > "$d/client.ext"
  openssl x509 -req -in "$d/client.csr" -CA "$CA" -CAkey "$CERTS/ca.key" -CAcreateserial \
    -CAserial "$d/ca.srl" -days 2 -sha256 -extfile "$d/client.ext" -out "$d/client-cert.pem" 2>/dev/null
  chmod 600 "$d/client-key.pem"
}
SB_DIR=$TMP/sysbench
SB_BAD=$TMP/sysbench-untrusted
mint_client_dir "$SB_DIR" "$CA" || die "could not mint sysbench's client certificate"
mint_client_dir "$SB_BAD" "$CERTS/other-ca.pem" || die "could not mint sysbench's client certificate"

sb() {  # sb PORT SSL(on|off) ARGS...   (runs in $SB_DIR)
  local port=$1 ssl=$2; shift 2
  (cd "$SB_DIR" && sysbench --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$port" \
    --mysql-user=sysbench --mysql-password=sysbench_pw --mysql-db=app --mysql-ssl="$ssl" "$@")
}

# Connection probe: one connect + the session's TLS version, printed as "tls=...".
cat > "$TMP/probe.lua" <<'EOF'
function event()
  local con = sysbench.sql.driver():connect()
  local v = con:query_row("SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'SSL_VERSION'")
  if v == nil or v == "" then v = "none" end
  print("tls=" .. v)
  con:disconnect()
end
EOF
probe() {  # probe DIR PORT SSL -> output of the probe
  (cd "$1" && timeout 20 sysbench "$TMP/probe.lua" --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$2" \
    --mysql-user=sysbench --mysql-password=sysbench_pw --mysql-db=app --mysql-ssl="$3" \
    --threads=1 --events=1 --time=0 run 2>&1)
}

DIRECT_TLS=$(probe "$SB_DIR" "$MYPORT" on) || { echo "$DIRECT_TLS" >&2; die "direct TLS connection with sysbench failed"; }
DIRECT_TLS=$(sed -n 's/^tls=//p' <<< "$DIRECT_TLS" | head -1)
if BAD=$(probe "$SB_BAD" "$MYPORT" on); then
  DIRECT_VERIFY="NOT verified: sysbench accepted the server with an unrelated CA as cacert.pem"
  NOTES+=("direct: sysbench/libmariadb did NOT verify the server certificate (an unrelated CA was accepted)")
else
  BAD_ERR=$(grep -m1 'TLS/SSL error' <<< "$BAD" || grep -m1 FATAL <<< "$BAD" || echo "?")
  DIRECT_VERIFY="chain verified against cacert.pem (unrelated CA -> ${BAD_ERR#FATAL: }); host name not checked"
fi
NOTES+=("direct: sysbench 1.0.20 has no --mysql-ssl-ca; TLS uses ./cacert.pem + ./client-{cert,key}.pem from its cwd: $DIRECT_VERIFY")
PLAIN=$(probe "$SB_DIR" "$MYPORT" off 2>&1) && die "MariaDB accepted a plaintext connection: $PLAIN"

log "sysbench oltp_read_only prepare ($BENCH_TABLES x $BENCH_TABLE_SIZE) over direct TLS ($DIRECT_TLS)"
sb "$MYPORT" on oltp_read_only --tables="$BENCH_TABLES" --table-size="$BENCH_TABLE_SIZE" --threads="$BENCH_TABLES" \
  prepare > "$TMP/prepare.log" 2>&1 || { cat "$TMP/prepare.log" >&2; die "sysbench prepare failed"; }

# dbward
DBW_PORT=$(free_port)
mkdir -p "$TMP/dbward"
cat > "$TMP/dbward/dbward.yaml" <<EOF
workers: 2
listeners:
  - name: my
    protocol: mysql
    listen: 127.0.0.1:$DBW_PORT
    backend: 127.0.0.1:$MYPORT
    backend_tls:
      verify: full
      ca_file: $CA
      server_name: localhost
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
log "dbward pid $DBW_PID on 127.0.0.1:$DBW_PORT"

# The same dbward with backend TLS session resumption off: every backend leg
# a full handshake, as before session_resumption existed.
DBW2_PORT=$(free_port)
mkdir -p "$TMP/dbward-noresume"
sed -e "s/127.0.0.1:$DBW_PORT/127.0.0.1:$DBW2_PORT/" -e "s|      server_name: localhost|      server_name: localhost\n      session_resumption: false|" \
  -e "s|$TMP/dbward/audit.log|$TMP/dbward-noresume/audit.log|" "$TMP/dbward/dbward.yaml" > "$TMP/dbward-noresume/dbward.yaml"
"$DBWARD" run --config "$TMP/dbward-noresume/dbward.yaml" > "$TMP/dbward-noresume/dbward.log" 2>&1 &
DBW2_PID=$!
LIVE[$DBW2_PID]=dbward-noresume
wait_listen "$DBW2_PORT" "$DBW2_PID" dbward-noresume "$TMP/dbward-noresume/dbward.log"

# stunnel: only if it has a mysql protocol mode (Debian's 5.x has not).
ST_PID=""
ST_PORT=""
if [[ -x $STUNNEL ]]; then
  ST_PORT=$(free_port)
  ST=$TMP/stunnel
  mkdir -p "$ST"
  cat > "$ST/stunnel.conf" <<EOF
foreground = yes
pid =
debug = warning
output = $ST/stunnel.log

[my]
client = yes
accept = 127.0.0.1:$ST_PORT
connect = 127.0.0.1:$MYPORT
protocol = mysql
verifyChain = yes
CAfile = $CA
checkHost = localhost
EOF
  "$STUNNEL" "$ST/stunnel.conf" > "$ST/stdout.log" 2>&1 &
  pid=$!
  LIVE[$pid]=stunnel
  for _ in $(seq 50); do
    [[ -n $(ss -Hltn "sport = :$ST_PORT") ]] && { ST_PID=$pid; break; }
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -n $ST_PID ]]; then
    log "stunnel (protocol = mysql) pid $ST_PID on 127.0.0.1:$ST_PORT"
  else
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    unset "LIVE[$pid]"
    st_err=$({ cat "$ST/stdout.log" "$ST/stunnel.log" 2>/dev/null || true; } | grep -m1 -E '^\[!\]|error' || true)
    st_err=${st_err:-did not listen}
    NOTES+=("stunnel: not measured, $("$STUNNEL" -version 2>&1 | grep -m1 '^stunnel' | cut -d' ' -f1-2) rejects 'protocol = mysql': $st_err")
  fi
else
  NOTES+=("stunnel: not measured, $STUNNEL not installed")
fi
NOTES+=("haproxy/stunnel without a mysql mode: not measured, a plain TLS client cannot do MySQL's in-protocol TLS upgrade (plaintext greeting, then SSLRequest)")

# ---------------------------------------------------------------- runs
# measure PATH MODE   (MODE: persistent | reconnect)
measure() {
  local path=$1 mode=$2 port ssl pid="" extra=() out rc tps qps avg p95 cpu="-" t0=0 t1 label
  case $path in
    direct)  port=$MYPORT; ssl=on ;;
    dbward)  port=$DBW_PORT; ssl=off; pid=$DBW_PID ;;
    dbward-noresume) port=$DBW2_PORT; ssl=off; pid=$DBW2_PID ;;
    stunnel) port=$ST_PORT; ssl=off; pid=$ST_PID ;;
  esac
  if [[ $mode == reconnect ]]; then extra=(--reconnect=1); fi
  local test=oltp_read_only
  if [[ $mode == connect ]]; then test=$TMP/connect.lua; fi
  label="$path/$mode"
  log "run $label (${BENCH_SECONDS}s)"
  out=$TMP/run.$path.$mode.log
  if [[ -n $pid ]]; then
    kill -0 "$pid" 2>/dev/null || { ROWS+=("$label|FAIL|-|-|-|-|proxy process is gone"); FAILED=1; return; }
    t0=$(cpu_ticks "$pid")
  fi
  rc=0
  sb "$port" "$ssl" "$test" --tables="$BENCH_TABLES" --table-size="$BENCH_TABLE_SIZE" \
    --threads="$BENCH_THREADS" --time="$BENCH_SECONDS" --forced-shutdown=15 "${extra[@]}" run > "$out" 2>&1 || rc=$?
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    t1=$(cpu_ticks "$pid")
    cpu=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", d / hz }')
  fi
  tps=$(sed -n 's/^ *transactions: *[0-9]* *(\([0-9.]*\) per sec.*/\1/p' "$out" | head -1)
  qps=$(sed -n 's/^ *queries: *[0-9]* *(\([0-9.]*\) per sec.*/\1/p' "$out" | head -1)
  avg=$(sed -n 's/^ *avg: *\([0-9.]*\)$/\1/p' "$out" | head -1)
  p95=$(sed -n 's/^ *95th percentile: *\([0-9.]*\)$/\1/p' "$out" | head -1)
  if [[ $rc -eq 0 && -n $tps && -n $qps && -n $avg && -n $p95 ]] && ! grep -q 'FATAL' "$out"; then
    ROWS+=("$label|$(printf '%.0f' "$tps")|$(printf '%.0f' "$qps")|$avg|$p95|$cpu|")
  else
    local err
    err=$(grep -m1 -E 'FATAL: .*error|FATAL|ALERT' "$out" || tail -1 "$out")
    ROWS+=("$label|FAIL|-|-|-|$cpu|rc=$rc ${err#FATAL: }")
    FAILED=1
    log "$label failed (rc=$rc):"; sed 's/^/    /' "$out" >&2
  fi
}

PATHS=(direct dbward)
[[ -n $ST_PID ]] && PATHS+=(stunnel)
T_START=$SECONDS
for path in "${PATHS[@]}"; do measure "$path" persistent; done
# Connect per request: each event connects (TLS direct, plaintext to the
# proxies), runs SELECT 1 and disconnects; tps = connections per second.
cat > "$TMP/connect.lua" <<'EOF'
function event()
  local con = sysbench.sql.driver():connect()
  con:query("SELECT 1")
  con:disconnect()
end
EOF
for path in direct dbward dbward-noresume; do measure "$path" connect; done
if sysbench oltp_read_only help 2>&1 | grep -q -- '--reconnect'; then
  for path in "${PATHS[@]}"; do measure "$path" reconnect; done
else
  NOTES+=("reconnect set: skipped, $(sysbench --version) has no --reconnect option")
fi

RESUMED=$(grep -c '"backend_resumed":true' "$TMP/dbward/audit.log" || true)
TOTAL=$(grep -c '"event":"session"' "$TMP/dbward/audit.log" || true)
NOTES+=("connect rows: tps = connections per second (connect, SELECT 1, disconnect); dbward resumed the backend TLS session on $RESUMED of its $TOTAL backend legs; dbward-noresume has session_resumption: false")
# dbward's own view of the backend leg, from its audit log.
if [[ -s $TMP/dbward/audit.log ]]; then
  DBW_LEG=$(grep -m1 '"outcome":"ok"' "$TMP/dbward/audit.log" |
    sed -n 's/.*"backend_tls":"\([^"]*\)".*"backend_verified":\([a-z]*\).*/\1, backend_verified=\2/p')
  NOTES+=("dbward: backend leg ${DBW_LEG:-?} (audit log), client leg plaintext")
fi

# ---------------------------------------------------------------- report
printf '\nsysbench oltp_read_only --threads=%s --time=%s, %s tables x %s rows, %s CPUs; MariaDB %s TLS-only on 127.0.0.1 (direct: %s)\n' \
  "$BENCH_THREADS" "$BENCH_SECONDS" "$BENCH_TABLES" "$BENCH_TABLE_SIZE" "$(nproc)" "$MY_VERSION" "$DIRECT_TLS"
printf '%s | %s\n\n' "$("$DBWARD" --version 2>&1 | head -1)" "$(sysbench --version 2>&1 | head -1)"
{
  echo "path|tps|qps|avg ms|p95 ms|proxy CPU s|note"
  printf '%s\n' "${ROWS[@]}"
} | awk -F'|' '
  { for (i = 1; i <= NF; i++) { cell[NR, i] = $i; if (length($i) > w[i] && i < 7) w[i] = length($i) } n = NR }
  END {
    for (r = 1; r <= n; r++) {
      line = ""
      for (i = 1; i <= 6; i++) line = line sprintf("%-*s | ", w[i], cell[r, i])
      line = line cell[r, 7]
      sub(/[ |]+$/, "", line)
      print line
    }
  }'
printf '\nproxy CPU s = utime+stime of the proxy process during that run.\n'
printf -- '- %s\n' "${NOTES[@]}"
log "measurements took $((SECONDS - T_START)) s"
exit "$FAILED"
