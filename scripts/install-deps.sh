#!/usr/bin/env bash
# Installs what dbward needs to build, test, demo and benchmark, from Debian
# packages only. Idempotent and quiet: packages already present are skipped.
set -euo pipefail

packages=(
  # build
  build-essential cmake ninja-build pkg-config
  android-libboringssl-dev libuv1-dev libyaml-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  # tests, demo and benchmarks: real peers
  openssl ca-certificates python3 python3-yaml procps iproute2 curl
  stunnel4 haproxy
  postgresql postgresql-client pgbouncer
  mariadb-server mariadb-client sysbench
  freetds-bin
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    echo "error: run as root (or install these packages): ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Daemons pulled in by packages must not start on their own: the scripts
  # start their own instances on free ports.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod +x "$policy"
    created_policy=1
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" > /tmp/dbward-apt.log 2>&1 ||
    { tail -30 /tmp/dbward-apt.log >&2; exit 1; }
  if ((created_policy)); then rm -f "$policy"; fi
fi

# Node.js runs the real client libraries (node-postgres, ...). A machine that
# already has node (and npm) keeps it; otherwise Debian's packages.
if ! command -v node > /dev/null || ! command -v npm > /dev/null; then
  echo "installing: nodejs npm"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm > /tmp/dbward-apt.log 2>&1 ||
    { tail -30 /tmp/dbward-apt.log >&2; exit 1; }
fi
