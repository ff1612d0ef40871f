#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, and runs every
# test (unit and end-to-end against real servers and clients) through ctest.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
BUILD_DIR=${BUILD_DIR:-$root/build} "$root/scripts/build.sh"
# The client libraries the end-to-end tests drive, pinned by package-lock.json.
(cd "$root/tests/integration/node" && npm ci --no-audit --no-fund --silent)
cd "${BUILD_DIR:-$root/build}"
ctest --output-on-failure --timeout 300 "$@"
