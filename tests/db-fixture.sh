#!/usr/bin/env bash
# A database server shared by every test of one ctest run (fixtures
# pg_server and mariadb_server): picks a free port, starts the server with
# tests/pg-server.sh or tests/mariadb-server.sh, and writes the port to
# DIR/port for the tests to read.
#   db-fixture.sh start pg|mariadb DIR CERTDIR
#   db-fixture.sh stop pg|mariadb DIR
set -euo pipefail
cmd=${1:?usage: db-fixture.sh start|stop pg|mariadb DIR [CERTDIR]}
kind=${2:?pg or mariadb}
dir=${3:?DIR}
here=$(cd "$(dirname "$0")" && pwd)
case $kind in
  pg) script=$here/pg-server.sh ;;
  mariadb) script=$here/mariadb-server.sh ;;
  *) echo "unknown server kind $kind" >&2; exit 2 ;;
esac

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

case $cmd in
  start)
    certs=${4:?CERTDIR}
    "$script" stop "$dir" > /dev/null 2>&1 || true
    # Another process may take the port between the check and the bind: try
    # a few.
    for attempt in 1 2 3; do
      port=$(free_port)
      if out=$("$script" start "$dir" "$port" "$certs" 2>&1); then
        echo "$port" > "$dir/port"
        echo "$kind server on 127.0.0.1:$port ($dir)"
        exit 0
      fi
      echo "attempt $attempt on port $port failed:" >&2
      echo "$out" >&2
    done
    exit 1
    ;;
  stop)
    "$script" stop "$dir"
    rm -rf "$dir"
    ;;
  *) echo "unknown command $cmd" >&2; exit 2 ;;
esac
