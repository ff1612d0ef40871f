#!/usr/bin/env bash
# The README's demo command: installs what is missing, builds dbward, and
# shows the main job: a plaintext client goes through dbward to a TLS-only
# server, dbward validates the server's certificate, and the audit log says
# what the client did. Then the same with a server whose certificate has the
# wrong name, to show the error dbward gives. Stops everything it started.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
BUILD_DIR=${BUILD_DIR:-$root/build} "$root/scripts/build.sh" > /dev/null
dbward=${BUILD_DIR:-$root/build}/dbward

work=$(mktemp -d /tmp/dbward-demo-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== making a throwaway CA and server certificates in $work"
"$root/tests/gen-test-certs.sh" "$work/pki" > /dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do ss -Hltn "sport = :$1" | grep -q . && return 0; sleep 0.05; done; return 1; }

good=$(free_port); bad=$(free_port); front=$(free_port); front_bad=$(free_port)
openssl s_server -accept "127.0.0.1:$good" -cert "$work/pki/server.pem" -key "$work/pki/server.key" -rev -quiet >/dev/null 2>&1 &
pids+=($!)
openssl s_server -accept "127.0.0.1:$bad" -cert "$work/pki/wrongname.pem" -key "$work/pki/wrongname.key" -rev -quiet >/dev/null 2>&1 &
pids+=($!)
wait_port "$good"; wait_port "$bad"

cat > "$work/dbward.yaml" <<YAML
workers: 2
listeners:
  - name: orders
    protocol: tcp
    listen: 127.0.0.1:$front
    backend: 127.0.0.1:$good
    backend_tls:
      verify: full
      ca_file: pki/ca.pem
      server_name: localhost
  - name: misconfigured
    protocol: tcp
    listen: 127.0.0.1:$front_bad
    backend: 127.0.0.1:$bad
    backend_tls:
      ca_file: pki/ca.pem
      server_name: localhost
log:
  level: info
  audit: audit.jsonl
YAML
echo "== dbward check-config"
"$dbward" check-config "$work/dbward.yaml"
"$dbward" run --config "$work/dbward.yaml" 2> "$work/dbward.log" &
pids+=($!)
wait_port "$front"

echo "== plaintext client -> dbward -> TLS server (verify-full)"
python3 - "$front" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"hello through dbward\n")
print("server answered:", s.recv(100).decode().strip())
s.close()
PY
echo "== plaintext client -> dbward -> server with the wrong certificate name"
python3 - "$front_bad" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"this must never reach that server\n")
try:
    closed = s.recv(100) == b""
except ConnectionResetError:
    closed = True
print("connection closed by dbward before any byte reached the server:", closed)
PY
sleep 0.3
echo "== dbward log"
cat "$work/dbward.log"
echo "== audit events"
cat "$work/audit.jsonl"
