# shellcheck shell=bash disable=SC2034  # sets globals for the sourcing script
# Shared by bench/pg_compare.sh and bench/mysql_compare.sh (sourced, not run):
# process bookkeeping and cleanup, free ports, readiness checks, CPU sampling,
# the throwaway PKI and a scripted database server.
#
# The sourcing script sets BENCH_NAME, REPO, BENCH_KEEP_TMP and DB_SCRIPT
# (tests/pg-server.sh or tests/mariadb-server.sh), then calls bench_init.

log() { printf '[%s] %s\n' "$BENCH_NAME" "$*" >&2; }
die() { log "error: $*"; exit 2; }

# bench_init: the temp dir (reachable by the database's OS user), traps.
bench_init() {
  CLK_TCK=$(getconf CLK_TCK)
  TMP=$(mktemp -d "${TMPDIR:-/tmp}/$BENCH_NAME.XXXXXX")
  # The database runs as its own OS user and must reach into TMP.
  chmod 755 "$TMP"
  declare -gA LIVE=()   # pid -> name, every long-running process we started
  DB_STARTED=0
  FAILED=0
  ROWS=()
  NOTES=()
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  declare -gA USED_PORTS=()
  read -r EPH_LO _ < /proc/sys/net/ipv4/ip_local_port_range
  PORT_LO=10000
  PORT_SPAN=$((EPH_LO - PORT_LO))
  ((PORT_SPAN > 1000)) || { PORT_LO=$((EPH_LO > 2048 ? 1024 : 61000)); PORT_SPAN=1000; }
}

bench_cleanup() {
  local rc=$? pid
  set +e
  for pid in "${!LIVE[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${!LIVE[@]}"; do
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  [[ $DB_STARTED -eq 1 ]] && "$REPO/tests/$DB_SCRIPT" stop "$TMP/db"
  if [[ $BENCH_KEEP_TMP == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  exit "$rc"
}

# A TCP port no socket uses (listening or not), below the kernel's ephemeral
# range so outgoing connections cannot grab it meanwhile, and not handed out
# before in this run.
free_port() {
  local p
  while :; do
    p=$((PORT_LO + (RANDOM * 32768 + RANDOM) % PORT_SPAN))
    [[ -z ${USED_PORTS[$p]:-} ]] || continue
    [[ -z $(ss -Htan "sport = :$p") ]] || continue
    USED_PORTS[$p]=1
    echo "$p"
    return
  done
}

# wait_listen PORT PID NAME LOGFILE: wait until PORT listens while PID lives.
wait_listen() {
  local port=$1 pid=$2 name=$3 logf=$4
  for _ in $(seq 100); do
    [[ -n $(ss -Hltn "sport = :$port") ]] && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      log "$name exited before listening; its log:"; cat "$logf" >&2 || true
      die "$name did not start"
    fi
    sleep 0.1
  done
  log "$name log:"; cat "$logf" >&2 || true
  die "$name did not listen on $port within 10 s"
}

# stat_fields PID: F = the fields of /proc/PID/stat after the ")" of comm, so
# F[0] is field 3 (state): utime is F[11], stime F[12], cutime F[13] and
# cstime F[14]. False when PID has exited.
stat_fields() {
  local stat
  { stat=$(< "/proc/$1/stat"); } 2> /dev/null || return 1
  read -r -a F <<< "${stat##*) }"
}

# CPU ticks (utime+stime, all threads) of PID.
cpu_ticks() {
  stat_fields "$1" || return 1
  echo $((F[11] + F[12]))
}

# server_ticks PID: CPU ticks of a forking server (PostgreSQL): the process,
# the children it has reaped (cutime+cstime) and its live children. Between
# two samples a child's CPU moves from the live sum into cutime when it is
# reaped, so the difference is exact, but for a child reaped in the instant
# between the two reads of one sample: counted in neither then, in full at the
# next (a few ticks at most).
server_ticks() {
  local c sum
  stat_fields "$1" || return 1
  sum=$((F[11] + F[12] + F[13] + F[14]))
  for c in $(pgrep -P "$1"); do
    stat_fields "$c" || continue  # exited since pgrep
    sum=$((sum + F[11] + F[12]))
  done
  echo "$sum"
}

# children_cpu: CHILD_MS = CPU milliseconds (user+system) of the shell's
# finished children so far. The times builtin must run in this shell: in a
# $(...) subshell it would count the subshell's children (none).
children_cpu() {
  times > "$TMP/times"
  CHILD_MS=$(awk 'NR == 2 { ms = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); ms += (a[1] * 60 + a[2]) * 1000 }
                            printf "%.0f\n", ms }' "$TMP/times")
}

# bench_pki: the throwaway PKI in $CERTS (CA = $CERTS/ca.pem).
bench_pki() {
  CERTS=$TMP/certs
  CA=$CERTS/ca.pem
  log "generating test PKI"
  "$REPO/tests/gen-test-certs.sh" "$CERTS" > "$TMP/certs.log" 2>&1 || { cat "$TMP/certs.log" >&2; die "gen-test-certs.sh failed"; }
  chmod 755 "$CERTS"
}

# bench_start_db LABEL: starts $DB_SCRIPT in $TMP/db on a free port, which
# lands in DB_PORT; a port lost to a race is retried twice.
bench_start_db() {
  DB_STARTED=1
  for attempt in 1 2 3; do
    DB_PORT=$(free_port)
    log "starting $1 on 127.0.0.1:$DB_PORT"
    if "$REPO/tests/$DB_SCRIPT" start "$TMP/db" "$DB_PORT" "$CERTS" 2> "$TMP/db-start.err"; then return; fi
    cat "$TMP/db-start.err" >&2
    [[ $attempt -lt 3 ]] || die "$DB_SCRIPT start failed"
    log "retrying with another port"
  done
}
