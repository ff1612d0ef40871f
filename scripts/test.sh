#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, runs every
# test through ctest (unit and end-to-end against real servers and clients,
# in parallel), then runs each fuzz target for a bounded time. Each pass
# prints its own time.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
"$root/scripts/install-deps.sh"
BUILD_DIR=$build "$root/scripts/build.sh"
# The client libraries the end-to-end tests drive, pinned by package-lock.json.
(cd "$root/tests/integration/node" && npm ci --no-audit --no-fund --silent)

# Tests wait on servers and clients far more than they compute: more jobs
# than cores keeps both cores busy.
jobs=${CTEST_JOBS:-$(( $(nproc) * 4 ))}
start=$(date +%s)
(cd "$build" && ctest --output-on-failure --timeout 300 -j "$jobs" "$@")
echo "== ctest: $(( $(date +%s) - start )) s with -j $jobs"

# The end-to-end suite again, against a dbward built with AddressSanitizer
# and UBSan: any report (including a leak at exit) is written under
# asan-logs/ and fails the pass.
if [[ ${DBWARD_SKIP_SANITIZE:-0} != 1 ]]; then
  start=$(date +%s)
  asan=${ASAN_BUILD_DIR:-$root/build-asan}
  mkdir -p "$asan"
  cmake -S "$root" -B "$asan" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDBWARD_WERROR=ON -DDBWARD_SANITIZE=ON \
    -DDBWARD_BUILD_BENCH=OFF > "$asan/configure.log" 2>&1 || { cat "$asan/configure.log" >&2; exit 1; }
  cmake --build "$asan" --parallel "$(nproc)" --target dbward dbward_integration_tests tds_fixture \
    $(grep -q jtds_client "$asan/build.ninja" && echo jtds_client)
  rm -rf "$asan/asan-logs" && mkdir -p "$asan/asan-logs"
  built=$(( $(date +%s) - start ))
  # A failing test and a sanitizer report are often the same event (a
  # process that died under ASan): print the reports before failing either way.
  rc=0
  ASAN_OPTIONS=detect_leaks=1:log_path=$asan/asan-logs/asan:handle_abort=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$asan/asan-logs/ubsan \
    bash -c "cd '$asan' && ctest --output-on-failure --timeout 300 -j '$jobs' -L e2e" || rc=$?
  if compgen -G "$asan/asan-logs/*" > /dev/null; then
    echo "== sanitizer reports:" >&2
    head -50 "$asan"/asan-logs/* >&2
    exit 1
  fi
  ((rc == 0)) || exit "$rc"
  echo "== sanitizer pass (ASan + UBSan, end-to-end suite): $(( $(date +%s) - start )) s, of which build ${built} s"
fi

# The container image, built from deploy/Dockerfile and run (tests/container_test.sh):
# a skip (exit 77, reason printed) only without podman, which install-deps installs.
if [[ ${DBWARD_SKIP_CONTAINER:-0} != 1 ]]; then
  start=$(date +%s)
  crc=0
  DBWARD_BINARY=$build/dbward CONTAINER_WORK=$build/container "$root/tests/container_test.sh" || crc=$?
  ((crc == 0 || crc == 77)) || exit "$crc"
  echo "== container image: $(( $(date +%s) - start )) s"
fi

if [[ ${DBWARD_SKIP_FUZZ:-0} != 1 ]]; then
  start=$(date +%s)
  FUZZ_BUILD_DIR=${FUZZ_BUILD_DIR:-$root/build-fuzz} "$root/tests/fuzz/run.sh" "${FUZZ_SECONDS:-15}"
  echo "== fuzzing: $(( $(date +%s) - start )) s (${FUZZ_SECONDS:-15} s per target)"
fi
