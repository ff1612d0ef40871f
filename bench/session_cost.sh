#!/usr/bin/env bash
# shellcheck disable=SC2317  # cleanup runs from a trap
# What one session costs, for each path to one local PostgreSQL 15 (TLS only),
# in one run, side by side:
#
#   direct         pgbench --(TLS, verify-full)--> postgres
#   dbward-before  the same dbward configuration, another binary (DBWARD_BEFORE; optional)
#   dbward         pgbench --(plaintext)--> dbward --(TLS, verify full)--> postgres
#   dbward-warm    dbward with warm_backends: {count: 8, max_age: 20s}
#   pgbouncer      session pool, server_tls_sslmode = verify-full
#   stunnel        protocol = pgsql, verifyChain, checkHost
#
# (haproxy cannot do PostgreSQL's SSLRequest upgrade towards the server, so it
# has no row here; bench/relay_throughput.sh compares it on raw TLS.)
#
# Figures, per path:
#   lat c1 µs      pgbench -S -M prepared -c 1: average latency, and added vs direct
#   TPS c8         -c 8 -j 2, and the ratio to direct
#   CPU µs/tx      the proxy process's utime+stime during the -c 8 run / transactions
#   syscalls/rt    strace -c -f on the proxy during -c 1 -t N (N round trips), total / N
#   conn/s md5     pgbench -C -c 8 (a new connection per transaction), md5_user, and the ratio to direct
#   conn lat µs    pgbench -C -c 1 latency (connect + one query), and added vs direct
#   CPU per conn   during the -C -c 8 run, ms per connection of the PostgreSQL
#                  server (postmaster and backends, live or reaped), the proxy
#                  and pgbench; CPUs / their sum is the most connections per
#                  second this machine can make on that path
#   across a network  pgbench -C -c 1 (rate, latency) and -C -c 4 (rate) with
#                  bench/delay_link between the client host and PostgreSQL
#                  (BENCH_RTT_US), for direct, dbward, dbward-warm, pgbouncer
#                  and stunnel
# and, for dbward, KiB per idle session (RSS growth / N): N idle plaintext
# clients relayed to a TLS echo server (bench/tls_sink) through a tcp
# listener; N TLS clients logged in through a postgres listener to
# tls_sink --protocol postgres (TLS on both legs); and 80 node-postgres
# clients logged in to the real server (TLS on both legs).
#
# Usage: bench/session_cost.sh BUILD_DIR     (dbward is BUILD_DIR/dbward)
# Environment: BENCH_SECONDS=5 (per run), BENCH_ROUNDS=3 (medians of the rounds),
#   BENCH_ROUNDTRIPS=3000, BENCH_IDLE=10000, BENCH_RTT_US=1000 (the emulated network),
#   DBWARD_BEFORE=/path/to/older/dbward, BENCH_KEEP_TMP=1
set -euo pipefail

BUILD=${1:?usage: bench/session_cost.sh BUILD_DIR}
BENCH_SECONDS=${BENCH_SECONDS:-5}
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
BENCH_ROUNDTRIPS=${BENCH_ROUNDTRIPS:-3000}
BENCH_IDLE=${BENCH_IDLE:-10000}
BENCH_KEEP_TMP=${BENCH_KEEP_TMP:-0}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DBWARD=${DBWARD:-$BUILD/dbward}
DBWARD_BEFORE=${DBWARD_BEFORE:-}
PGBOUNCER=${PGBOUNCER:-/usr/sbin/pgbouncer}
STUNNEL=${STUNNEL:-/usr/bin/stunnel4}
TLS_SINK=${TLS_SINK:-$BUILD/bench/tls_sink}
DELAY_LINK=${DELAY_LINK:-$BUILD/bench/delay_link}
BENCH_RTT_US=${BENCH_RTT_US:-1000}

BENCH_NAME=session_cost
DB_SCRIPT=pg-server.sh
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"
for b in "$DBWARD" "$PGBOUNCER" "$STUNNEL" "$TLS_SINK" "$DELAY_LINK"; do [[ -x $b ]] || die "$b not found"; done
for c in pgbench psql strace python3 ss; do command -v $c > /dev/null || die "$c not found"; done
# Each relayed session holds two descriptors in dbward: the idle count is
# bounded by the open-file limit, which root may raise.
ulimit -n 65536 2> /dev/null || ulimit -n "$(ulimit -Hn)"
max_idle=$((($(ulimit -n) - 300) / 2 - 200))  # 200 more open first, to warm up
((BENCH_IDLE <= max_idle)) || { log "BENCH_IDLE $BENCH_IDLE is more than the open-file limit allows; using $max_idle"; BENCH_IDLE=$max_idle; }

bench_init
bench_pki
bench_start_db PostgreSQL
PGPORT=$DB_PORT
su_psql() { psql -X -q -v ON_ERROR_STOP=1 -h "$TMP/db" -p "$PGPORT" -U postgres "$@"; }
conninfo() { echo "host=$1 port=$2 dbname=app user=$3 gssencmode=disable connect_timeout=10 $4"; }
DIRECT_TLS="sslmode=verify-full sslrootcert=$CA"
PGPASSWORD=scram_pw pgbench -i -q -s 1 "$(conninfo localhost "$PGPORT" scram_user "hostaddr=127.0.0.1 $DIRECT_TLS")" \
  > "$TMP/init.log" 2>&1 || { cat "$TMP/init.log" >&2; die "pgbench -i failed"; }
su_psql -d app -c "GRANT SELECT ON ALL TABLES IN SCHEMA public TO md5_user" || die "granting md5_user SELECT failed"

# run_dbward LABEL BINARY CONFIG PORT: starts it, waits until PORT listens;
# its pid lands in RUN_PID (a function's output would be read in a subshell).
run_dbward() {
  local label=$1 bin=$2 config=$3 port=$4
  "$bin" run --config "$config" > "${config%.yaml}.log" 2>&1 &
  RUN_PID=$!
  LIVE[$RUN_PID]=$label
  wait_listen "$port" "$RUN_PID" "$label" "${config%.yaml}.log"
}

# dbward: one config per variant (its own process, so CPU and syscalls are its own).
# Its pid lands in PID[$STAGE NAME], its port in PORT[NAME], or NET_PORT[NAME]
# for the paths across the emulated network (STAGE=net-).
start_dbward() {  # NAME BINARY EXTRA_LISTENER_LINES [BACKEND_PORT]
  local name=$1 bin=$2 extra=$3 backend=${4:-$PGPORT} dir=$TMP/$STAGE$1 port
  port=$(free_port)
  mkdir -p "$dir"
  cat > "$dir/dbward.yaml" <<EOF
workers: 2
listeners:
  - name: pg
    protocol: postgres
    listen: 127.0.0.1:$port
    backend: 127.0.0.1:$backend
    backend_tls:
      verify: full
      ca_file: $CA
      server_name: localhost
$extra
log:
  level: warn
  audit: off
EOF
  run_dbward "$STAGE$name" "$bin" "$dir/dbward.yaml" "$port"
  PID[$STAGE$name]=$RUN_PID
  set_port "$name" "$port"
}
declare -A PID PORT NET_PORT
STAGE=
set_port() { if [[ -n $STAGE ]]; then NET_PORT[$1]=$2; else PORT[$1]=$2; fi; }  # NAME PORT
path_port() { if [[ -n $STAGE ]]; then echo "${NET_PORT[$1]}"; else echo "${PORT[$1]}"; fi; }  # NAME
PORT[direct]=$PGPORT
PATHS=(direct)
if [[ -n $DBWARD_BEFORE ]]; then
  start_dbward dbward-before "$DBWARD_BEFORE" ""
  PATHS+=(dbward-before)
fi
start_dbward dbward "$DBWARD" ""
start_dbward dbward-warm "$DBWARD" "    warm_backends: {count: 8, max_age: 20s}"
PATHS+=(dbward dbward-warm)

# pgbouncer (session pool; md5_user from an auth_file)
MD5_SECRET=$(su_psql -d postgres -Atc "select passwd from pg_shadow where usename = 'md5_user'")
start_pgbouncer() {  # NAME BACKEND_PORT: as start_dbward
  local name=$1 backend=$2 dir=$TMP/$STAGE$1 port
  port=$(free_port)
  mkdir -p "$dir"
  printf '"md5_user" "%s"\n' "$MD5_SECRET" > "$dir/userlist.txt"
  cat > "$dir/pgbouncer.ini" <<EOF
[databases]
app = host=127.0.0.1 port=$backend dbname=app
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = md5
auth_file = $dir/userlist.txt
pool_mode = session
max_client_conn = 200
default_pool_size = 20
server_tls_sslmode = verify-full
server_tls_ca_file = $CA
logfile = $dir/pgbouncer.log
log_connections = 0
log_disconnections = 0
EOF
  chown -R postgres: "$dir"
  local as_postgres=()
  [[ $(id -u) -eq 0 ]] && as_postgres=(-u postgres)
  "$PGBOUNCER" "${as_postgres[@]}" "$dir/pgbouncer.ini" > "$dir/stdout.log" 2>&1 &
  LIVE[$!]=$STAGE$name
  PID[$STAGE$name]=$!
  set_port "$name" "$port"
  wait_listen "$port" "$!" "$STAGE$name" "$dir/stdout.log"
}
start_pgbouncer pgbouncer "$PGPORT"

# stunnel
start_stunnel() {  # NAME BACKEND_PORT: as start_dbward
  local name=$1 backend=$2 dir=$TMP/$STAGE$1 port
  port=$(free_port)
  mkdir -p "$dir"
  cat > "$dir/stunnel.conf" <<EOF
foreground = yes
pid =
debug = warning
output = $dir/stunnel.log
[pg]
client = yes
accept = 127.0.0.1:$port
connect = 127.0.0.1:$backend
protocol = pgsql
verifyChain = yes
CAfile = $CA
checkHost = localhost
EOF
  "$STUNNEL" "$dir/stunnel.conf" > "$dir/stdout.log" 2>&1 &
  LIVE[$!]=$STAGE$name
  PID[$STAGE$name]=$!
  set_port "$name" "$port"
  wait_listen "$port" "$!" "$STAGE$name" "$dir/stdout.log"
}
start_stunnel stunnel "$PGPORT"
PATHS+=(pgbouncer stunnel)

target() {  # PATH -> conninfo
  case $1 in
    direct) conninfo localhost "$(path_port direct)" md5_user "hostaddr=127.0.0.1 $DIRECT_TLS" ;;
    *) conninfo 127.0.0.1 "$(path_port "$1")" md5_user "sslmode=disable" ;;
  esac
}
pgb() {  # PATH OUT ARGS...: pgbench -S -M prepared, md5_user
  local path=$1 out=$2
  shift 2
  PGPASSWORD=md5_pw timeout 120 pgbench -S -n -M prepared "$@" "$(target "$path")" > "$out" 2>&1 ||
    { log "pgbench $* through $path failed:"; cat "$out" >&2; FAILED=1; return 1; }
}
field() { sed -n "s/^$1 = \([0-9.]*\).*/\1/p" "$2" | head -1; }
per_conn() { awk -v ms="$1" -v n="$2" 'BEGIN { printf "%.2f", ms / n }'; }  # MS N: ms per connection
processed() { sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$1"; }  # pgbench OUT

# Syscalls per round trip: one connection, N round trips, every syscall of
# every proxy thread (a count, not a timing: measured once).
declare -A LAT1 TPS8 CPU8 SYS CONN CLAT SRVMS PXYMS CLIMS
PGPID=$(head -1 "$TMP/db/data/postmaster.pid")
for p in "${PATHS[@]}"; do
  pid=${PID[$p]:-}
  [[ -n $pid ]] || continue
  log "counting syscalls through $p"
  strace -c -f -q -p "$pid" -o "$TMP/$p.strace" &
  sp=$!
  # Counting starts once strace is attached to the process.
  for _ in $(seq 100); do
    [[ $(awk '/^TracerPid:/ { print $2 }' "/proc/$pid/status") != 0 ]] && break
    sleep 0.05
  done
  pgb "$p" "$TMP/$p.st" -c 1 -j 1 -t "$BENCH_ROUNDTRIPS" || true
  kill -INT "$sp"
  wait "$sp" 2> /dev/null || true
  total=$(awk '$NF == "total" { print $4 }' "$TMP/$p.strace")
  # pgbench -t N: N transactions after a connect; the connect's syscalls are
  # spread over them, which is why N is large.
  SYS[$p]=$(awk -v t="$total" -v n="$BENCH_ROUNDTRIPS" 'BEGIN { if (t > 0) printf "%.2f", t / n; else print "-" }')
done

# Timings: BENCH_ROUNDS rounds, each measuring every path in turn, and the
# median of each figure. A shared machine drifts (another guest, frequency):
# in turns, a slow minute slows one round of every path, not all of one.
# Each round starts one path further on, so no path always follows the same
# one (and the connection churn of its -C runs).
for round in $(seq "$BENCH_ROUNDS"); do
  k=$(((round - 1) % ${#PATHS[@]}))
  order=("${PATHS[@]:k}" "${PATHS[@]:0:k}")
  for p in "${order[@]}"; do
    log "round $round/$BENCH_ROUNDS: $p"
    pgb "$p" "$TMP/$p.c1" -c 1 -j 1 -T "$BENCH_SECONDS" &&
      LAT1[$p]+=" $(awk -v l="$(field 'latency average' "$TMP/$p.c1")" 'BEGIN { printf "%.1f", l * 1000 }')"
    pid=${PID[$p]:-}
    t0=0
    [[ -n $pid ]] && t0=$(cpu_ticks "$pid")
    if pgb "$p" "$TMP/$p.c8" -c 8 -j 2 -T "$BENCH_SECONDS"; then
      TPS8[$p]+=" $(field tps "$TMP/$p.c8")"
      if [[ -n $pid ]]; then
        t1=$(cpu_ticks "$pid")
        n=$(processed "$TMP/$p.c8")
        CPU8[$p]+=" $(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$n" 'BEGIN { printf "%.1f", d / hz * 1e6 / n }')"
      fi
    fi
    # What each connection costs the machine, by process: the server, the
    # proxy, the client (pgbench).
    s0=$(server_ticks "$PGPID")
    [[ -n $pid ]] && t0=$(cpu_ticks "$pid")
    children_cpu
    c0=$CHILD_MS
    if pgb "$p" "$TMP/$p.C8" -C -c 8 -j 2 -T "$BENCH_SECONDS"; then
      CONN[$p]+=" $(field tps "$TMP/$p.C8")"
      children_cpu
      s1=$(server_ticks "$PGPID")
      n=$(processed "$TMP/$p.C8")
      SRVMS[$p]+=" $(per_conn $(((s1 - s0) * 1000 / CLK_TCK)) "$n")"
      CLIMS[$p]+=" $(per_conn $((CHILD_MS - c0)) "$n")"
      [[ -n $pid ]] && PXYMS[$p]+=" $(per_conn $((($(cpu_ticks "$pid") - t0) * 1000 / CLK_TCK)) "$n")"
    fi
    pgb "$p" "$TMP/$p.C1" -C -c 1 -j 1 -T "$BENCH_SECONDS" &&
      CLAT[$p]+=" $(awk -v l="$(field 'latency average' "$TMP/$p.C1")" 'BEGIN { printf "%.0f", l * 1000 }')"
  done
done
median() {  # VALUES...: their median, or - when there are none
  printf '%s\n' "$@" | sort -g | awk 'NF { a[++n] = $1 } END {
    if (n == 0) print "-"; else if (n % 2) print a[(n + 1) / 2]; else printf "%.1f\n", (a[n / 2] + a[n / 2 + 1]) / 2 }'
}
for p in "${PATHS[@]}"; do
  # shellcheck disable=SC2086  # the lists are space-separated on purpose
  {
    LAT1[$p]=$(median ${LAT1[$p]:-})
    TPS8[$p]=$(median ${TPS8[$p]:-})
    CPU8[$p]=$(median ${CPU8[$p]:-})
    CONN[$p]=$(median ${CONN[$p]:-})
    CLAT[$p]=$(median ${CLAT[$p]:-})
    SRVMS[$p]=$(median ${SRVMS[$p]:-})
    PXYMS[$p]=$(median ${PXYMS[$p]:-})
    CLIMS[$p]=$(median ${CLIMS[$p]:-})
  }
done

# Connect per request across a network. On one machine the client, the proxy
# and the server share the CPUs, and at -c 8 they are all busy (the table
# above). Where dbward is meant to stand, beside the application, the server
# is a network away: every round trip of the connection's set-up costs the
# client time, and the server's CPUs are its own. bench/delay_link stands for
# that network between the client host (pgbench and each proxy) and
# PostgreSQL, BENCH_RTT_US round trip; -c 1 and -c 4 keep this machine's CPUs
# from being the bound.
log "connect per request across a ${BENCH_RTT_US} µs round trip (bench/delay_link)"
"$DELAY_LINK" --listen 127.0.0.1:0 --to "127.0.0.1:$PGPORT" --rtt-us "$BENCH_RTT_US" > "$TMP/delay_link.out" 2>&1 &
LIVE[$!]=delay_link
for _ in $(seq 50); do grep -q "listening on" "$TMP/delay_link.out" && break; sleep 0.1; done
LINK_PORT=$(sed -n 's/.*listening on .*:\([0-9]*\)$/\1/p' "$TMP/delay_link.out")
[[ -n $LINK_PORT ]] || die "delay_link did not start: $(cat "$TMP/delay_link.out")"
STAGE=net-
NET_PORT[direct]=$LINK_PORT
start_dbward dbward "$DBWARD" "" "$LINK_PORT"
start_dbward dbward-warm "$DBWARD" "    warm_backends: {count: 8, max_age: 20s}" "$LINK_PORT"
start_pgbouncer pgbouncer "$LINK_PORT"
start_stunnel stunnel "$LINK_PORT"
NET_PATHS=(direct dbward dbward-warm pgbouncer stunnel)
declare -A NCONN1 NLAT1 NCONN4
for round in $(seq "$BENCH_ROUNDS"); do
  k=$(((round - 1) % ${#NET_PATHS[@]}))
  order=("${NET_PATHS[@]:k}" "${NET_PATHS[@]:0:k}")
  for p in "${order[@]}"; do
    log "round $round/$BENCH_ROUNDS across the network: $p"
    if pgb "$p" "$TMP/net-$p.C1" -C -c 1 -j 1 -T "$BENCH_SECONDS"; then
      NCONN1[$p]+=" $(field tps "$TMP/net-$p.C1")"
      NLAT1[$p]+=" $(awk -v l="$(field 'latency average' "$TMP/net-$p.C1")" 'BEGIN { printf "%.0f", l * 1000 }')"
    fi
    pgb "$p" "$TMP/net-$p.C4" -C -c 4 -j 2 -T "$BENCH_SECONDS" && NCONN4[$p]+=" $(field tps "$TMP/net-$p.C4")"
  done
done
for p in "${NET_PATHS[@]}"; do
  # shellcheck disable=SC2086  # the lists are space-separated on purpose
  {
    NCONN1[$p]=$(median ${NCONN1[$p]:-})
    NLAT1[$p]=$(median ${NLAT1[$p]:-})
    NCONN4[$p]=$(median ${NCONN4[$p]:-})
  }
  kill "${PID[net-$p]:-}" 2> /dev/null || true
done
STAGE=

# KiB per idle session at scale, against bench/tls_sink (a real PostgreSQL
# cannot hold 10 000 sessions on this machine; the node-postgres row after
# these is the cross-check against one):
# - tcp: plaintext clients through a tcp listener to a TLS echo server, each
#   byte echoed once;
# - postgres: TLS on both legs; clients verify dbward's own certificate, log in
#   to tls_sink --protocol postgres (a minimal PostgreSQL server: trust login,
#   empty answers) over verified TLS and run one query each.
# start_sink NAME TLS_SINK_ARGS...: its port lands in SINK_PORT.
start_sink() {
  local name=$1
  shift
  "$TLS_SINK" --listen 127.0.0.1:0 --cert "$CERTS/server.pem" --key "$CERTS/server.key" "$@" \
    > "$TMP/$name.out" 2> "$TMP/$name.err" &
  LIVE[$!]=$name
  for _ in $(seq 50); do grep -q "listening on" "$TMP/$name.out" && break; sleep 0.1; done
  SINK_PORT=$(sed -n 's/.*listening on .*:\([0-9]*\)$/\1/p' "$TMP/$name.out")
}
start_sink tls_sink --mode echo
ECHO_PORT=$SINK_PORT
start_sink tls_sink-postgres --protocol postgres --chunk 4096
PGSINK_PORT=$SINK_PORT
idle_kib() {  # NAME BINARY tcp|postgres BACKEND_PORT
  local name=$1 bin=$2 protocol=$3 backend=$4 port client_tls=""
  port=$(free_port)
  mkdir -p "$TMP/$name"
  [[ $protocol == postgres ]] && client_tls="    client_tls:
      cert_file: $CERTS/proxy.pem
      key_file: $CERTS/proxy.key"
  cat > "$TMP/$name/idle-$protocol.yaml" <<YAML
workers: 2
listeners:
  - name: idle
    protocol: $protocol
    listen: 127.0.0.1:$port
    backend: 127.0.0.1:$backend
    backend_tls:
      ca_file: $CA
      server_name: localhost
$client_tls
    max_connections: $((BENCH_IDLE + 1000))
    max_handshakes: $((BENCH_IDLE + 1000))
    max_handshakes_per_client: $((BENCH_IDLE + 1000))
log:
  level: warn
  audit: off
YAML
  run_dbward "$name-idle-$protocol" "$bin" "$TMP/$name/idle-$protocol.yaml" "$port"
  local pid=$RUN_PID
  python3 - "$protocol" "$port" "$BENCH_IDLE" "$pid" "$CA" <<'PY'
import socket, ssl, struct, sys
protocol, port, n, pid, ca = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
def open_tcp():  # its byte echoed: relaying, then idle
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"x")
    if s.recv(1) != b"x":
        raise SystemExit("FAIL the byte did not come back through dbward")
    return s
ctx = ssl.create_default_context(cafile=ca)  # verify-full against dbward's certificate
def read_until_ready(s):
    buf = b""
    while True:
        while len(buf) >= 5:
            kind, length = buf[0:1], struct.unpack("!I", buf[1:5])[0]
            if len(buf) < 1 + length:
                break
            if kind == b"E":
                raise SystemExit(f"FAIL server error: {buf[5:1 + length]!r}")
            if kind == b"Z":
                return
            buf = buf[1 + length:]
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit("FAIL connection closed before ReadyForQuery")
        buf += chunk
def open_postgres():  # logged in, one query answered: relaying, then idle
    raw = socket.create_connection(("127.0.0.1", port))
    # Without it the StartupMessage waits behind the client's TLS Finished
    # for a delayed ACK (40 ms a session).
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    raw.sendall(struct.pack("!II", 8, 80877103))
    if raw.recv(1) != b"S":
        raise SystemExit("FAIL dbward refused the SSLRequest")
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    params = b"user\0md5_user\0database\0app\0\0"
    s.sendall(struct.pack("!II", 8 + len(params), 196608) + params)
    read_until_ready(s)
    q = b"select 1\0"
    s.sendall(b"Q" + struct.pack("!I", 4 + len(q)) + q)
    read_until_ready(s)
    return s
open_one = open_postgres if protocol == "postgres" else open_tcp
socks = [open_one() for _ in range(200)]  # warms the allocator and the pools, as a running proxy is
before = rss()
socks += [open_one() for _ in range(n)]
after = rss()
print(f"{(after - before) / n:.1f}")
PY
  kill "$pid"
}
IDLE_AFTER=$(idle_kib dbward "$DBWARD" tcp "$ECHO_PORT")
IDLE_BEFORE=""
[[ -n $DBWARD_BEFORE ]] && IDLE_BEFORE=$(idle_kib dbward-before "$DBWARD_BEFORE" tcp "$ECHO_PORT")
TLSIDLE_AFTER=$(idle_kib dbward "$DBWARD" postgres "$PGSINK_PORT")
TLSIDLE_BEFORE=""
[[ -n $DBWARD_BEFORE ]] && TLSIDLE_BEFORE=$(idle_kib dbward-before "$DBWARD_BEFORE" postgres "$PGSINK_PORT")

# KiB per idle session with TLS on both legs: node-postgres clients over TLS to
# dbward's own certificate, logged in and idle. PostgreSQL's max_connections
# (100) bounds how many; pgbouncer's pool and the warm legs are let go first.
NODE_PG=$REPO/tests/integration/node/node_modules/pg
IDLE_PG=${BENCH_IDLE_PG:-80}
kill "${PID[pgbouncer]}" "${PID[dbward-warm]}" 2> /dev/null || true
pg_idle_kib() {  # NAME BINARY
  local name=$1 bin=$2 port
  port=$(free_port)
  mkdir -p "$TMP/$name"
  cat > "$TMP/$name/pgidle.yaml" <<YAML
workers: 2
listeners:
  - name: pgidle
    protocol: postgres
    listen: 127.0.0.1:$port
    backend: 127.0.0.1:$PGPORT
    backend_tls:
      ca_file: $CA
      server_name: localhost
    client_tls:
      cert_file: $CERTS/proxy.pem
      key_file: $CERTS/proxy.key
log:
  level: warn
  audit: off
YAML
  run_dbward "$name-pgidle" "$bin" "$TMP/$name/pgidle.yaml" "$port"
  local pid=$RUN_PID
  node - "$NODE_PG" "$port" "$IDLE_PG" "$pid" <<'JS'
const [pgPath, port, n, pid] = process.argv.slice(2);
const { Client } = require(pgPath);
const fs = require('fs');
const rss = () => +/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1];
(async () => {
  const clients = [];
  const open = async (k) => {
    for (let i = 0; i < k; i++) {
      const c = new Client({ host: '127.0.0.1', port: +port, user: 'md5_user', password: 'md5_pw', database: 'app',
                             ssl: { rejectUnauthorized: false } });
      await c.connect();
      await c.query('select 1');
      clients.push(c);
    }
  };
  await open(5);  // warms the allocator and the pools
  const before = rss();
  await open(+n);
  console.log(((rss() - before) / +n).toFixed(1));
  await Promise.all(clients.map((c) => c.end()));
})().catch((e) => { console.log('FAIL ' + e.message); process.exit(1); });
JS
  kill "$pid"
}
if [[ -d $NODE_PG ]] && command -v node > /dev/null; then
  PGIDLE_AFTER=$(pg_idle_kib dbward "$DBWARD")
  PGIDLE_BEFORE=""
  [[ -n $DBWARD_BEFORE ]] && PGIDLE_BEFORE=$(pg_idle_kib dbward-before "$DBWARD_BEFORE")
else
  PGIDLE_AFTER="(node-postgres is not installed: cd tests/integration/node && npm ci)"
  PGIDLE_BEFORE=""
fi

# ---------------------------------------------------------------- report
printf '\npgbench -S -M prepared, md5_user, %s s per run, medians of %s rounds, %s CPUs; PostgreSQL 15 TLS-only on 127.0.0.1\n' \
  "$BENCH_SECONDS" "$BENCH_ROUNDS" "$(nproc)"
printf '%-14s %9s %8s %9s %6s %10s %12s %9s %6s %11s %8s\n' path "lat c1 µs" added "TPS c8" "×dir" "CPU µs/tx" syscalls/rt "conn/s" "×dir" "conn lat µs" added
d_lat=${LAT1[direct]:-0}; d_tps=${TPS8[direct]:-0}; d_conn=${CONN[direct]:-0}; d_clat=${CLAT[direct]:-0}
for p in "${PATHS[@]}"; do
  awk -v p="$p" -v l="${LAT1[$p]:--}" -v dl="$d_lat" -v t="${TPS8[$p]:--}" -v dt="$d_tps" -v c="${CPU8[$p]:--}" \
    -v s="${SYS[$p]:--}" -v cn="${CONN[$p]:--}" -v dc="$d_conn" -v cl="${CLAT[$p]:--}" -v dcl="$d_clat" 'BEGIN {
      added = (l == "-" || p == "direct") ? "-" : sprintf("%+.1f", l - dl)
      tr = (t == "-" || dt == 0) ? "-" : sprintf("%.2f", t / dt)
      cr = (cn == "-" || dc == 0) ? "-" : sprintf("%.2f", cn / dc)
      cadd = (cl == "-" || p == "direct") ? "-" : sprintf("%+d", cl - dcl)
      printf "%-14s %9s %8s %9.0f %6s %10s %12s %9.0f %6s %11s %8s\n", p, l, added, t, tr, c, s, cn, cr, cl, cadd
    }'
done
# Connect-per-request on one machine is bound by its CPUs: each connection
# costs the server, the proxy and the client some CPU time, and at -c 8 all
# CPUs are busy. The ceiling is CPUs / (the sum), whatever the proxy hides.
printf '\nCPU per connection, pgbench -C -c 8, ms (medians): what one connect-per-request transaction costs this machine\n'
printf '%-14s %9s %8s %9s %8s %14s %9s\n' path postgres proxy pgbench total "ceiling/s" "conn/s"
for p in "${PATHS[@]}"; do
  awk -v p="$p" -v s="${SRVMS[$p]:--}" -v x="${PXYMS[$p]:--}" -v c="${CLIMS[$p]:--}" -v cn="${CONN[$p]:--}" \
    -v cpus="$(nproc)" 'BEGIN {
      t = s + (x == "-" ? 0 : x) + c
      printf "%-14s %9s %8s %9s %8.2f %14.0f %9s\n", p, s, x, c, t, (t > 0 ? cpus * 1000 / t : 0),
        (cn == "-" ? cn : sprintf("%.0f", cn))
    }'
done
awk -v s="${SRVMS[direct]:-0}" -v c="${CLIMS[direct]:-0}" -v w="${SRVMS[dbward-warm]:-0}" 'BEGIN {
  if (s + c == 0) exit
  printf "1.5x the direct rate on this machine needs at most %.2f ms of CPU per connection, all processes together;\n", (s + c) / 1.5
  printf "PostgreSQL alone spends %.2f ms on each (%.2f ms on a warm leg), which no proxy in front of it removes.\n", s, w
}'
printf '\nConnect per request across a %s µs round trip (bench/delay_link between the client host and PostgreSQL), medians\n' "$BENCH_RTT_US"
printf '%-14s %9s %6s %11s %8s %9s %6s\n' path "conn/s c1" "×dir" "conn lat µs" added "conn/s c4" "×dir"
for p in "${NET_PATHS[@]}"; do
  awk -v p="$p" -v c1="${NCONN1[$p]:--}" -v d1="${NCONN1[direct]:-0}" -v l="${NLAT1[$p]:--}" -v dl="${NLAT1[direct]:-0}" \
    -v c4="${NCONN4[$p]:--}" -v d4="${NCONN4[direct]:-0}" 'BEGIN {
      r1 = (c1 == "-" || d1 == 0) ? "-" : sprintf("%.2f", c1 / d1)
      r4 = (c4 == "-" || d4 == 0) ? "-" : sprintf("%.2f", c4 / d4)
      add = (l == "-" || p == "direct") ? "-" : sprintf("%+d", l - dl)
      printf "%-14s %9s %6s %11s %8s %9s %6s\n", p, (c1 == "-" ? c1 : sprintf("%.0f", c1)), r1, l, add,
        (c4 == "-" ? c4 : sprintf("%.0f", c4)), r4
    }'
done
printf '\nKiB per idle session (plaintext client -> dbward -> TLS backend, %s sessions): %s' "$BENCH_IDLE" "$IDLE_AFTER"
[[ -n $IDLE_BEFORE ]] && printf ' (before: %s)' "$IDLE_BEFORE"
printf '\nKiB per idle session (TLS client -> dbward -> TLS backend, %s logged-in sessions to tls_sink --protocol postgres): %s' "$BENCH_IDLE" "$TLSIDLE_AFTER"
[[ -n $TLSIDLE_BEFORE ]] && printf ' (before: %s)' "$TLSIDLE_BEFORE"
printf '\nKiB per idle session (TLS client -> dbward -> TLS backend, %s logged-in PostgreSQL sessions): %s' "$IDLE_PG" "$PGIDLE_AFTER"
[[ -n $PGIDLE_BEFORE ]] && printf ' (before: %s)' "$PGIDLE_BEFORE"
printf '\npgbouncer connect-per-request reuses pooled server connections (no backend TLS handshake).\n'
exit "$FAILED"
