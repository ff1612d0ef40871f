#!/usr/bin/env bash
# Installs what dbward needs to build, test, demo and benchmark, from Debian
# packages only. Idempotent and quiet: packages already present are skipped.
set -euo pipefail

packages=(
  # build
  build-essential cmake ninja-build pkg-config
  android-libboringssl-dev libuv1-dev libyaml-cpp-dev libfmt-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  # fuzzing (libFuzzer with ASan and UBSan)
  clang libclang-rt-14-dev
  # tests, demo and benchmarks: real peers
  openssl ca-certificates python3 python3-yaml procps iproute2 curl
  stunnel4 haproxy
  # real Prometheus (and promtool) for the metrics, alert-rule and dashboard tests
  prometheus
  # a real browser for the report page test
  chromium
  # the container image, built from deploy/Dockerfile on a base made here
  podman buildah mmdebstrap uidmap
  postgresql postgresql-client pgbouncer
  mariadb-server mariadb-client sysbench
  freetds-bin
  # jTDS 1.3, the legacy Java driver, and pgJDBC (it sets application_name
  # with a SET after login); the JDK compiles the small test client
  libjtds-java libpostgresql-jdbc-java default-jdk-headless
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# Node.js runs the real client libraries (node-postgres, mysql2, tedious). A
# machine that already has node and npm keeps them; otherwise Debian's.
if ! command -v node > /dev/null || ! command -v npm > /dev/null; then
  missing+=(nodejs npm)
fi

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
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod +x "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" > /tmp/dbward-apt.log 2>&1 ||
    { tail -30 /tmp/dbward-apt.log >&2; exit 1; }
fi

# tedious 19 and its Azure dependencies declare Node.js >= 20; Debian 12's own
# nodejs is 18. Say so instead of failing in obscure ways later.
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if ((node_major < 20)); then
  echo "warning: Node.js $(node --version 2>/dev/null) found; the tedious (SQL Server) client tests expect Node.js >= 20" >&2
fi
