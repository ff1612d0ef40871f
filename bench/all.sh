#!/usr/bin/env bash
# Every comparison in bench/, one after the other on this machine, and their
# tables together at the end: what one session costs (session_cost.sh:
# added latency, TPS and proxy CPU per transaction, syscalls per round trip,
# connect-per-request md5, KiB per idle session), PostgreSQL persistent and
# connect-per-request with SCRAM and md5 (pg_compare.sh), MySQL
# native-password persistent and connect-per-request (mysql_compare.sh),
# relay MB per proxy CPU second (relay_throughput.sh) and TDS result sets
# (tds_compare.sh). Nothing else should run on the machine meanwhile.
#
# Usage: bench/all.sh BUILD_DIR [NAME...]    (default: all five, in that order)
# Environment: BENCH_OUT=DIR keeps each script's output and log there (a
#   temporary directory otherwise); every other variable reaches the scripts
#   (DBWARD_BEFORE=, BENCH_SECONDS=, ...).
# Exit status: non-zero if any script failed; the others still run.
set -uo pipefail

BUILD=${1:?usage: bench/all.sh BUILD_DIR [NAME...]}
shift
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NAMES=("$@")
((${#NAMES[@]} > 0)) || NAMES=(session_cost pg_compare mysql_compare relay_throughput tds_compare)
for n in "${NAMES[@]}"; do
  [[ -f $REPO/bench/$n.sh ]] || { echo "bench/all.sh: no bench/$n.sh" >&2; exit 2; }
done
OUT=${BENCH_OUT:-$(mktemp -d /tmp/dbward-bench.XXXXXX)}
mkdir -p "$OUT"

failed=()
for n in "${NAMES[@]}"; do
  echo "[all] $n (log: $OUT/$n.log)" >&2
  start=$SECONDS
  if ! bash "$REPO/bench/$n.sh" "$BUILD" > "$OUT/$n.out" 2> "$OUT/$n.log"; then
    failed+=("$n")
    echo "[all] $n failed; the end of its log:" >&2
    tail -n 15 "$OUT/$n.log" | sed 's/^/    /' >&2
  fi
  echo "[all] $n took $((SECONDS - start)) s" >&2
done

echo "dbward benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(uname -r)"
echo "binary: $BUILD/dbward${DBWARD_BEFORE:+ (before: $DBWARD_BEFORE)}"
for n in "${NAMES[@]}"; do
  echo
  echo "== $n"
  cat "$OUT/$n.out"
done
if ((${#failed[@]} > 0)); then
  echo
  echo "failed: ${failed[*]} (logs in $OUT)"
  exit 1
fi
