#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) in a separate build
# tree and runs each for a bounded time, starting from the committed seed
# corpus, FUZZ_JOBS targets at a time (default: one per core).
#   tests/fuzz/run.sh [SECONDS] [TARGET...]    (default: 30 s, every target)
# FUZZ_BUILD_DIR overrides the build tree (default: build-fuzz). New inputs
# go to $FUZZ_BUILD_DIR/fuzz-work/<target>/corpus, crashes to .../artifacts;
# the committed corpus is only read. Add a crash input there as a regression
# seed once the bug is fixed. Exits non-zero when any target finds a crash or
# breaks an invariant.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-30}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(pg_first_message pg_message mysql_greeting mysql_handshake_response tds_prelogin tds_login7 tds_login_response
           ssrp scram proxy_header audit_line)
fi
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
jobs=${FUZZ_JOBS:-$(nproc)}

mkdir -p "$build"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER="${CC:-clang}" -DCMAKE_CXX_COMPILER="${CXX:-clang++}" \
  -DDBWARD_FUZZ=ON -DDBWARD_BUILD_BENCH=OFF > "$build/configure.log" 2>&1 ||
  { cat "$build/configure.log" >&2; exit 1; }
cmake --build "$build" --target "${targets[@]/%/_fuzz}" > "$build/build.log" 2>&1 ||
  { tail -40 "$build/build.log" >&2; exit 1; }

run_one() {
  local t=$1 work=$build/fuzz-work/$1
  mkdir -p "$work/corpus" "$work/artifacts"
  # -max_len covers the 10000-byte startup cap and the 16 KiB auth-message cap.
  # MySQL's 64 KiB connection-phase cap is a check on the 4-byte header, which
  # needs no payload that long to reach. TDS's 64 KiB pre-login cap counts
  # reassembled packets (the unit tests reach it); overlapping PRELOGIN options
  # reach the 65529-byte re-encoding limit well inside 16500 bytes.
  if "$build/tests/fuzz/${t}_fuzz" -max_total_time="$seconds" -max_len=16500 -print_final_stats=1 \
      -artifact_prefix="$work/artifacts/" "$work/corpus" "$root/tests/fuzz/corpus/$t" > "$work/log" 2>&1; then
    echo ok > "$work/result"
  else
    echo "FAILED (see $work/log and $work/artifacts/)" > "$work/result"
  fi
}

running=0
for t in "${targets[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if ((running >= jobs)); then
    wait -n || true
    running=$((running - 1))
  fi
done
wait

status=0
for t in "${targets[@]}"; do
  work=$build/fuzz-work/$t
  result=$(cat "$work/result" 2>/dev/null || echo "FAILED (no result)")
  if [[ $result != ok ]]; then
    status=1
    tail -40 "$work/log" >&2 || true
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
  cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$work/log" | tail -1 || true)
  echo "$t: $result, ${execs:-?} execs in ${seconds}s, $cov, corpus $(ls "$work/corpus" | wc -l) new files"
done
exit $status
