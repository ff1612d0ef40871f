#!/usr/bin/env bash
# Large-result throughput for SQL Server's protocol: tedious reading
# `SELECT big N` (4 columns per row) from the TDS fixture, directly over TLS
# and through dbward (plaintext and TLS client legs; the backend leg is always
# verified TLS). Prints rows/s and MB/s (payload bytes from dbward's audit).
#   bench/tds_compare.sh [BUILD_DIR]      env: BENCH_ROWS (default 1000000), BENCH_RUNS (3)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
rows=${BENCH_ROWS:-1000000}
runs=${BENCH_RUNS:-3}
work=$(mktemp -d /tmp/dbward-tdsbench-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
"$root/tests/gen-test-certs.sh" "$work/pki" > /dev/null
"$build/tests/tds_fixture" --cert "$work/pki/server.pem" --key "$work/pki/server.key" > "$work/fixture.out" &
pids+=($!)
for _ in $(seq 100); do grep -q listening "$work/fixture.out" 2>/dev/null && break; sleep 0.05; done
fport=$(grep -o '[0-9]*$' "$work/fixture.out")
cat > "$work/dbward.yaml" <<YAML
workers: 2
listeners:
  - name: mssql
    protocol: tds
    listen: 127.0.0.1:0
    backend: 127.0.0.1:$fport
    backend_tls:
      ca_file: pki/ca.pem
      server_name: localhost
    client_tls:
      cert_file: pki/proxy.pem
      key_file: pki/proxy.key
log:
  level: warn
  audit: audit.jsonl
YAML
"$build/dbward" run --config "$work/dbward.yaml" 2> "$work/dbward.log" &
dpid=$!
pids+=($dpid)
for _ in $(seq 100); do grep -q "listening on" "$work/dbward.log" 2>/dev/null && break; sleep 0.05; done
# dbward logs at warn here; find its port from the socket table instead.
dport=$(ss -Hltnp | grep "pid=$dpid," | grep -o '127.0.0.1:[0-9]*' | head -1 | cut -d: -f2)

cat > "$work/read.js" <<'JS'
const { Connection, Request } = require(process.argv[2]);
const opts = JSON.parse(process.argv[3]);
const conn = new Connection({ server: '127.0.0.1', authentication: { type: 'default', options: { userName: 'sa_user', password: 'sa_pw' } },
  options: Object.assign({ port: opts.port, requestTimeout: 600000, connectTimeout: 10000, packetSize: 32767 }, opts.options) });
conn.on('connect', (err) => {
  if (err) { console.log('ERROR ' + err.message); process.exit(1); }
  let n = 0;
  const t0 = process.hrtime.bigint();
  const req = new Request('SELECT big ' + opts.rows, (e) => {
    if (e) { console.log('ERROR ' + e.message); process.exit(1); }
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    console.log(n + ' ' + s.toFixed(3));
    conn.close();
  });
  req.on('row', () => { n++; });
  conn.execSqlBatch(req);
});
conn.connect();
JS
tedious="$root/tests/integration/node/node_modules/tedious"
ca=$(node -e 'console.log(JSON.stringify(require("fs").readFileSync(process.argv[1], "utf8")))' "$work/pki/ca.pem")
run() {  # label port options-json
  local best=""
  for _ in $(seq "$runs"); do
    local out
    out=$(node "$work/read.js" "$tedious" "{\"port\":$2,\"rows\":$rows,\"options\":$3}")
    [[ $out == ERROR* ]] && { echo "$1: $out" >&2; return 1; }
    local secs=${out#* }
    if [[ -z $best ]] || awk "BEGIN{exit !($secs < $best)}"; then best=$secs; fi
  done
  printf '%s|%s\n' "$1" "$best"
}
results=()
results+=("$(run "direct (TLS 1.2, verified)" "$fport" "{\"encrypt\":true,\"serverName\":\"localhost\",\"cryptoCredentialsDetails\":{\"ca\":$ca}}")")
results+=("$(run "dbward, client plaintext" "$dport" "{\"encrypt\":false}")")
results+=("$(run "dbward, client TLS (verified)" "$dport" "{\"encrypt\":true,\"serverName\":\"localhost\",\"cryptoCredentialsDetails\":{\"ca\":$ca}}")")
sleep 0.3
bytes=$(python3 -c 'import json,sys; print(max(json.loads(l)["bytes_down"] for l in open(sys.argv[1])))' "$work/audit.jsonl")
printf '\nSELECT big %s through tedious (best of %s runs); result payload %.1f MB\n' "$rows" "$runs" "$(awk "BEGIN{print $bytes/1e6}")"
printf '%-32s | %10s | %10s | %8s\n' path seconds rows/s MB/s
for r in "${results[@]}"; do
  label=${r%|*}; secs=${r#*|}
  awk -v l="$label" -v s="$secs" -v n="$rows" -v b="$bytes" 'BEGIN{printf "%-32s | %10.3f | %10.0f | %8.1f\n", l, s, n/s, b/1e6/s}'
done
