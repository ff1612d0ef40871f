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

if [[ ${DBWARD_SKIP_FUZZ:-0} != 1 ]]; then
  start=$(date +%s)
  FUZZ_BUILD_DIR=${FUZZ_BUILD_DIR:-$root/build-fuzz} "$root/tests/fuzz/run.sh" "${FUZZ_SECONDS:-15}"
  echo "== fuzzing: $(( $(date +%s) - start )) s (${FUZZ_SECONDS:-15} s per target)"
fi
