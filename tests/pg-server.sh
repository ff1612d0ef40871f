#!/usr/bin/env bash
# Starts or stops a throwaway PostgreSQL server for tests and the demo.
#   pg-server.sh start DIR PORT CERTDIR   -> TLS-only server on 127.0.0.1:PORT
#   pg-server.sh stop DIR
# The server accepts only hostssl connections (hostnossl is rejected), with
# users scram_user (SCRAM-SHA-256), md5_user (md5) and a database "app".
# Passwords: scram_pw / md5_pw. For SCRAM mediation: the role dbward_auth
# (auth_pw) may call dbward.user_lookup(name) in every database, the
# SECURITY DEFINER function of deploy/examples/scram-user-lookup.sql. Runs as
# the postgres OS user, since the server refuses to run as root.
set -euo pipefail
cmd=${1:?usage: pg-server.sh start DIR PORT CERTDIR | stop DIR}
dir=${2:?DIR}
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[[ -x $bindir/postgres ]] || { echo "PostgreSQL server binaries not found" >&2; exit 1; }
as_pg() { if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case $cmd in
  stop)
    [[ -f $dir/data/postmaster.pid ]] && as_pg "$bindir/pg_ctl" -D "$dir/data" -m immediate stop > /dev/null 2>&1 || true
    exit 0
    ;;
  start)
    port=${3:?PORT}
    certs=${4:?CERTDIR}
    rm -rf "$dir"
    mkdir -p "$dir"
    [[ $(id -u) -eq 0 ]] && chown postgres: "$dir"
    as_pg "$bindir/initdb" -D "$dir/data" -A reject -U postgres --no-sync > "$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; exit 1; }
    install -m 600 "$certs/server.key" "$dir/data/server.key"
    install -m 644 "$certs/server.pem" "$dir/data/server.crt"
    install -m 644 "$certs/ca.pem" "$dir/data/root.crt"
    [[ $(id -u) -eq 0 ]] && chown postgres: "$dir/data/server.key" "$dir/data/server.crt" "$dir/data/root.crt"
    cat >> "$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
ssl_min_protocol_version = 'TLSv1.2'
password_encryption = 'scram-sha-256'
max_connections = 100
fsync = off
logging_collector = off
CONF
    cat > "$dir/data/pg_hba.conf" <<HBA
local     all  postgres                 trust
hostnossl all  all       0.0.0.0/0      reject
hostssl   all  md5_user  127.0.0.1/32   md5
hostssl   all  all       127.0.0.1/32   scram-sha-256
HBA
    as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 start > /dev/null ||
      { cat "$dir/server.log" >&2; exit 1; }
    lookup=$(cat "$(dirname "$0")/../deploy/examples/scram-user-lookup.sql")
    as_pg psql -q -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 > /dev/null <<SQL
CREATE ROLE scram_user LOGIN PASSWORD 'scram_pw';
SET password_encryption = 'md5';
CREATE ROLE md5_user LOGIN PASSWORD 'md5_pw';
CREATE DATABASE app OWNER scram_user;
GRANT ALL ON DATABASE app TO md5_user;
GRANT pg_read_all_stats TO scram_user, md5_user;
SET password_encryption = 'scram-sha-256';
CREATE ROLE dbward_auth LOGIN PASSWORD 'auth_pw';
\connect template1
$lookup
\connect postgres
$lookup
\connect app
$lookup
SQL
    ;;
  *) echo "unknown command $cmd" >&2; exit 2 ;;
esac
