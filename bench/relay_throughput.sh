#!/usr/bin/env bash
# shellcheck disable=SC2317  # cleanup runs from a trap, start_* via "start_$tool"
# Bulk throughput of a plaintext-in, TLS-out relay, dbward against the usual
# alternatives, on one machine:
#
#   loadgen --(plaintext)--> relay --(TLS, verify full)--> tls_sink
#
# Rows: direct (loadgen speaks TLS to tls_sink itself: the ceiling), dbward
# with 1 and 2 workers, stunnel (one process), haproxy with 1 and 2 threads.
# Each relay is started fresh for every measurement, so its CPU time and peak
# RSS belong to that measurement alone.
#
# Usage: bench/relay_throughput.sh [BUILD_DIR]        (default ./build)
#
# Environment (sizes take K/M/G suffixes, powers of 1024):
#   BENCH_CONNS=4            connections in the multi-connection runs
#   BENCH_BYTES=256M         bytes per connection in those runs
#   BENCH_SINGLE_BYTES=1G    bytes for the single-connection runs (0 skips them)
#   BENCH_CHUNK=65536        loadgen read/write size
#   BENCH_TOOLS="direct dbward stunnel haproxy"
#   BENCH_WORKERS="1 2"      dbward workers / haproxy threads to try
#   BENCH_TIMEOUT=120        seconds before one loadgen run is declared hung
#   BENCH_KEEP_TMP=1         keep the temp dir (configs, certs, logs)
#   TLS_SINK, LOADGEN, DBWARD, STUNNEL, HAPROXY   override binary paths
#
# Exit status is non-zero if any measurement failed; a missing dbward binary is
# reported and skipped, not a failure, since this script predates it.

set -euo pipefail

BUILD=${1:-./build}
BENCH_CONNS=${BENCH_CONNS:-4}
BENCH_BYTES=${BENCH_BYTES:-256M}
BENCH_SINGLE_BYTES=${BENCH_SINGLE_BYTES:-1G}
BENCH_CHUNK=${BENCH_CHUNK:-65536}
BENCH_TOOLS=${BENCH_TOOLS:-direct dbward stunnel haproxy}
BENCH_WORKERS=${BENCH_WORKERS:-1 2}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-120}
BENCH_KEEP_TMP=${BENCH_KEEP_TMP:-0}

log() { printf '[relay_throughput] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }

# CMake puts the bench tools in BUILD/bench; a hand build may leave them in
# BUILD itself.
find_tool() {
  local candidate
  for candidate in "$BUILD/bench/$1" "$BUILD/$1"; do
    if [[ -x $candidate ]]; then
      printf '%s\n' "$candidate"
      return 0
    fi
  done
  return 1
}

TLS_SINK=${TLS_SINK:-$(find_tool tls_sink || true)}
LOADGEN=${LOADGEN:-$(find_tool loadgen || true)}
DBWARD=${DBWARD:-$BUILD/dbward}
STUNNEL=${STUNNEL:-$(command -v stunnel4 || command -v stunnel || true)}
HAPROXY=${HAPROXY:-$(command -v haproxy || true)}
[[ -n $TLS_SINK ]] || die "tls_sink not found under $BUILD (build the tls_sink target)"
[[ -n $LOADGEN ]] || die "loadgen not found under $BUILD (build the loadgen target)"
command -v openssl >/dev/null || die "the openssl CLI is needed to make test certificates"

CLK_TCK=$(getconf CLK_TCK)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/relay_throughput.XXXXXX")

# pid -> description of every process still running that this script started.
declare -A LIVE=()
FAILED=0
ROWS=()

cleanup() {
  local pid
  for pid in "${!LIVE[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${!LIVE[@]}"; do
    # Give each a moment to exit on its own before insisting.
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  LIVE=()
  if [[ $BENCH_KEEP_TMP == 1 ]]; then
    log "kept $TMP"
  else
    rm -rf "$TMP"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

stop_process() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 30); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  unset "LIVE[$pid]"
}

# --- certificates ----------------------------------------------------------

make_certs() {
  local dir=$TMP/pki
  mkdir -p "$dir"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$dir/ca.key" -sha256 -days 2 -subj "/CN=dbward bench CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$dir/ca.pem" 2>/dev/null
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/server.key" 2>/dev/null
  openssl req -new -key "$dir/server.key" -subj "/CN=localhost" -out "$dir/server.csr" 2>/dev/null
  cat >"$dir/server.ext" <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1
EOF
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -set_serial "0x$(openssl rand -hex 12)" -days 2 -sha256 -extfile "$dir/server.ext" \
    -out "$dir/server.pem" 2>/dev/null
  # Fail here, with a clear message, rather than as handshake errors later.
  openssl verify -CAfile "$dir/ca.pem" -purpose sslserver "$dir/server.pem" >/dev/null ||
    die "generated server certificate does not verify"
  CA=$dir/ca.pem
  SERVER_CERT=$dir/server.pem
  SERVER_KEY=$dir/server.key
}

# --- ports and processes ---------------------------------------------------

# A port nothing listens on right now. Racy by nature (someone may take it
# before the relay binds), which is acceptable for a benchmark on a quiet box.
free_port() {
  if command -v python3 >/dev/null; then
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
    return
  fi
  local port
  for _ in $(seq 1 100); do
    port=$((20000 + RANDOM % 40000))
    if ! (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      printf '%s\n' "$port"
      return
    fi
  done
  die "no free port found"
}

port_open() { (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_ready PID PORT: until PORT accepts connections, or PID dies, or 10 s
# pass. The port itself is the test, not a log line: dbward announces
# "listening on" at info level, which the bench config's level: warn hides.
wait_ready() {
  local pid=$1 port=$2
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || return 1
    port_open "$port" && return 0
    sleep 0.1
  done
  return 1
}

start_sink() {
  local mode=$1 out=$TMP/sink-$1.out
  "$TLS_SINK" --listen 127.0.0.1:0 --cert "$SERVER_CERT" --key "$SERVER_KEY" \
    --mode "$mode" --min-version 1.2 >"$out" 2>"$TMP/sink-$mode.err" &
  local pid=$!
  LIVE[$pid]="tls_sink $mode"
  local port=""
  for _ in $(seq 1 50); do
    port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$out")
    [[ -n $port ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  [[ -n $port ]] || die "tls_sink --mode $mode did not start: $(cat "$TMP/sink-$mode.err")"
  SINK_PORT[$mode]=$port
}

# The PID itself and everything it forked: a relay that runs its workers as
# child processes must be charged for all of them.
process_tree() {
  ps -e -o pid=,ppid= | awk -v root="$1" '
    { parent[$1] = $2 }
    END {
      for (p in parent) {
        q = p
        while (q != "" && q != root && q > 1) q = parent[q]
        if (q == root) print p
      }
    }'
}

# utime + stime of the whole tree, in clock ticks.
cpu_ticks() {
  local total=0 pid stat fields
  for pid in $(process_tree "$1"); do
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    # comm (field 2) may hold spaces; the fields after its closing paren do not.
    read -r -a fields <<<"${stat##*) }"
    total=$((total + fields[11] + fields[12]))
  done
  printf '%s\n' "$total"
}

# Sum of VmHWM over the tree, in kB. Threads share one figure; forked
# workers each have their own.
peak_rss_kb() {
  local total=0 pid kb
  for pid in $(process_tree "$1"); do
    kb=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null) || continue
    total=$((total + ${kb:-0}))
  done
  printf '%s\n' "$total"
}

# --- relays ------------------------------------------------------------------
# start_<tool> WORKERS LISTEN_PORT SINK_PORT NAME: starts the relay in the
# background, sets PROXY_PID, returns non-zero if it never became ready (with
# its log left in $TMP/NAME.log).

start_dbward() {
  local workers=$1 port=$2 sink_port=$3 name=$4
  cat >"$TMP/$name.yaml" <<EOF
workers: $workers
listeners:
  - name: bench
    protocol: tcp
    listen: 127.0.0.1:$port
    backend: 127.0.0.1:$sink_port
    backend_tls:
      verify: full
      ca_file: $CA
      server_name: localhost
log:
  level: warn
  audit: $TMP/$name.audit.jsonl
EOF
  "$DBWARD" run --config "$TMP/$name.yaml" >"$TMP/$name.log" 2>&1 &
  PROXY_PID=$!
  LIVE[$PROXY_PID]=$name
  wait_ready "$PROXY_PID" "$port"
}

start_stunnel() {
  local port=$2 sink_port=$3 name=$4
  cat >"$TMP/$name.conf" <<EOF
foreground = yes
pid =
debug = warning
[bench]
client = yes
accept = 127.0.0.1:$port
connect = 127.0.0.1:$sink_port
verifyChain = yes
CAfile = $CA
checkHost = localhost
sni = localhost
EOF
  "$STUNNEL" "$TMP/$name.conf" >"$TMP/$name.log" 2>&1 &
  PROXY_PID=$!
  LIVE[$PROXY_PID]=$name
  wait_ready "$PROXY_PID" "$port"
}

start_haproxy() {
  local threads=$1 port=$2 sink_port=$3 name=$4
  local server_name_opts="verifyhost localhost sni str(localhost)"
  cat >"$TMP/$name.cfg" <<EOF
global
  nbthread $threads
  maxconn 1024
defaults
  mode tcp
  timeout connect 5s
  timeout client 2m
  timeout server 2m
frontend bench
  bind 127.0.0.1:$port
  default_backend sink
backend sink
  server s1 127.0.0.1:$sink_port ssl verify required ca-file $CA $server_name_opts
EOF
  # -db: stay in the foreground as a single process, so PROXY_PID is haproxy.
  "$HAPROXY" -db -f "$TMP/$name.cfg" >"$TMP/$name.log" 2>&1 &
  PROXY_PID=$!
  LIVE[$PROXY_PID]=$name
  wait_ready "$PROXY_PID" "$port"
}

# --- measurements ----------------------------------------------------------

add_row() { ROWS+=("$(printf '%s|%s|%s|%s|%s|%s|%s|%s' "$@")"); }

# run_loadgen DIRECTION CONNS BYTES PORT [EXTRA ARGS]: sets MBPS and
# TOTAL_BYTES; returns non-zero (after saying why) if loadgen failed.
run_loadgen() {
  local direction=$1 conns=$2 bytes=$3 port=$4
  shift 4
  local out rc=0 pid
  # In the background and waited for, rather than in $(...), so that a
  # SIGTERM/SIGINT to this script is acted on (and loadgen killed by the trap)
  # at once instead of after the run.
  timeout --kill-after=5 "$BENCH_TIMEOUT" "$LOADGEN" --connect "127.0.0.1:$port" \
    --connections "$conns" --bytes "$bytes" --mode "$direction" --chunk "$BENCH_CHUNK" \
    "$@" >"$TMP/loadgen.out" 2>"$TMP/loadgen.err" &
  pid=$!
  LIVE[$pid]=loadgen
  wait "$pid" || rc=$?
  unset "LIVE[$pid]"
  out=$(<"$TMP/loadgen.out")
  if ((rc != 0)); then
    if ((rc == 124 || rc == 137)); then
      log "loadgen timed out after ${BENCH_TIMEOUT}s"
    else
      log "loadgen exited with status $rc"
    fi
    sed 's/^/    /' "$TMP/loadgen.err" >&2
    return 1
  fi
  MBPS=$(sed -n 's/.*MBps=\([0-9.]*\).*/\1/p' <<<"$out")
  TOTAL_BYTES=$(sed -n 's/.* bytes=\([0-9]*\) .*/\1/p' <<<"$out")
  if [[ -z $MBPS || -z $TOTAL_BYTES ]]; then
    log "cannot parse loadgen output: $out"
    return 1
  fi
}

measure_direct() {
  local direction=$1 conns=$2 bytes=$3 sink_port
  sink_port=$(sink_for "$direction")
  log "direct $direction ${conns}x$bytes"
  if run_loadgen "$direction" "$conns" "$bytes" "$sink_port" \
      --tls --ca "$CA" --server-name localhost; then
    add_row direct - "$direction" "$conns" "$MBPS" - - -
  else
    FAILED=1
    add_row direct - "$direction" "$conns" FAIL - - -
  fi
}

# measure_relay TOOL WORKERS DIRECTION CONNS BYTES: returns 2 if the relay
# would not start (the caller decides whether that is fatal).
measure_relay() {
  local tool=$1 workers=$2 direction=$3 conns=$4 bytes=$5
  local name=$tool-w$workers-$direction-$conns port sink_port
  port=$(free_port)
  sink_port=$(sink_for "$direction")
  log "$tool workers=$workers $direction ${conns}x$bytes"
  PROXY_PID=""
  if ! "start_$tool" "$workers" "$port" "$sink_port" "$name"; then
    log "$tool did not become ready on 127.0.0.1:$port; its log ($TMP/$name.log):"
    tail -n 20 "$TMP/$name.log" 2>/dev/null | sed 's/^/    /' >&2 || true
    [[ -n $PROXY_PID ]] && stop_process "$PROXY_PID"
    return 2
  fi
  # Let the readiness probe's backend connection wind down before counting.
  sleep 0.2
  local ticks_before ticks_after rss_kb
  ticks_before=$(cpu_ticks "$PROXY_PID")
  if run_loadgen "$direction" "$conns" "$bytes" "$port"; then
    ticks_after=$(cpu_ticks "$PROXY_PID")
    rss_kb=$(peak_rss_kb "$PROXY_PID")
    # The proxy's CPU both ways: seconds per GB relayed, and MB relayed per
    # CPU second (the same figure inverted; "-" when too little to count).
    add_row "$tool" "$workers" "$direction" "$conns" "$MBPS" \
      "$(awk -v t=$((ticks_after - ticks_before)) -v hz="$CLK_TCK" -v b="$TOTAL_BYTES" \
        'BEGIN { printf "%.2f", t / hz / (b / 1e9) }')" \
      "$(awk -v t=$((ticks_after - ticks_before)) -v hz="$CLK_TCK" -v b="$TOTAL_BYTES" \
        'BEGIN { if (t > 0) printf "%.0f", b / 1e6 / (t / hz); else print "-" }')" \
      "$(awk -v kb="$rss_kb" 'BEGIN { printf "%.1f", kb * 1024 / 1e6 }')"
  else
    FAILED=1
    add_row "$tool" "$workers" "$direction" "$conns" FAIL - - -
    if ! kill -0 "$PROXY_PID" 2>/dev/null; then
      log "$tool exited during the run; its log:"
      tail -n 20 "$TMP/$name.log" | sed 's/^/    /' >&2 || true
    fi
  fi
  stop_process "$PROXY_PID"
  return 0
}

sink_for() {
  if [[ $1 == upload ]]; then
    printf '%s\n' "${SINK_PORT[discard]}"
  else
    printf '%s\n' "${SINK_PORT[source]}"
  fi
}

# "CONNSxBYTES" for every run shape the environment asks for.
shapes() {
  printf '%s\n' "${BENCH_CONNS}x$BENCH_BYTES"
  if [[ $BENCH_SINGLE_BYTES != 0 ]]; then printf '%s\n' "1x$BENCH_SINGLE_BYTES"; fi
}

run_tool() {
  local tool=$1 workers=$2 shape direction rc
  for shape in $(shapes); do
    for direction in upload download; do
      rc=0
      measure_relay "$tool" "$workers" "$direction" "${shape%%x*}" "${shape#*x}" || rc=$?
      if ((rc == 2)); then
        return 2
      fi
    done
  done
}

# --- main --------------------------------------------------------------------

make_certs
declare -A SINK_PORT=()
start_sink discard
start_sink source
log "tls_sink discard on ${SINK_PORT[discard]}, source on ${SINK_PORT[source]}; temp dir $TMP"
log "$(nproc) CPUs; shapes: $(shapes | tr '\n' ' ')"

SECONDS=0
for tool in $BENCH_TOOLS; do
  case $tool in
    direct)
      for shape in $(shapes); do
        for direction in upload download; do
          measure_direct "$direction" "${shape%%x*}" "${shape#*x}"
        done
      done
      ;;
    dbward)
      if [[ ! -x $DBWARD ]]; then
        log "skipping dbward rows: $DBWARD does not exist yet (build the dbward target)"
        continue
      fi
      for workers in $BENCH_WORKERS; do
        if ! run_tool dbward "$workers"; then
          log "skipping dbward rows: dbward failed to start (workers=$workers)"
          break
        fi
      done
      ;;
    stunnel)
      if [[ -z $STUNNEL ]]; then
        log "skipping stunnel rows: stunnel4 is not installed"
        continue
      fi
      # stunnel has no worker setting: one process, a thread per connection.
      if ! run_tool stunnel 1; then FAILED=1; add_row stunnel 1 - - FAIL - - -; fi
      ;;
    haproxy)
      if [[ -z $HAPROXY ]]; then
        log "skipping haproxy rows: haproxy is not installed"
        continue
      fi
      for workers in $BENCH_WORKERS; do
        if ! run_tool haproxy "$workers"; then FAILED=1; add_row haproxy "$workers" - - FAIL - - -; fi
      done
      ;;
    *) die "unknown tool '$tool' in BENCH_TOOLS" ;;
  esac
done
log "measurements took ${SECONDS}s"

{
  printf '%s|%s|%s|%s|%s|%s|%s|%s\n' tool workers direction conns MB/s "proxy CPU s per GB" \
    "MB per proxy CPU s" "peak RSS MB"
  if ((${#ROWS[@]} > 0)); then printf '%s\n' "${ROWS[@]}"; fi
} | awk -F'|' '
  { for (i = 1; i <= NF; i++) { cell[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } }
  END {
    for (r = 1; r <= NR; r++) {
      line = ""
      for (i = 1; i <= NF; i++) {
        fmt = (i <= 3) ? "%-" w[i] "s" : "%" w[i] "s"
        line = line (i > 1 ? " | " : "") sprintf(fmt, cell[r, i])
      }
      print line
      if (r == 1) { gsub(/[^|]/, "-", line); gsub(/\|/, "+", line); print line }
    }
  }'

exit "$FAILED"
