#!/usr/bin/env bash
# Starts or stops a throwaway MariaDB server for tests and benchmarks.
#   mariadb-server.sh start DIR PORT CERTDIR   -> TLS-only server on 127.0.0.1:PORT
#   mariadb-server.sh stop DIR
# require_secure_transport is ON, so TCP clients must use TLS (1.2 or 1.3); the
# unix socket DIR/mysqld.sock counts as secure and is used for administration.
# Database "app"; users (all with ALL on app.* and nothing global):
#   native_user / native_pw     mysql_native_password
#   ed_user     / ed_pw         ed25519
#   sysbench    / sysbench_pw   mysql_native_password
# Runs as the mysql OS user when started as root, since the server refuses
# to run as root.
set -euo pipefail
cmd=${1:?usage: mariadb-server.sh start DIR PORT CERTDIR | stop DIR}
dir=${2:?DIR}
mariadbd=$(command -v mariadbd || echo /usr/sbin/mariadbd)
[[ -x $mariadbd ]] || { echo "MariaDB server binary (mariadbd) not found" >&2; exit 1; }

if [[ $(id -u) -eq 0 ]]; then
  os_user=mysql
  admin_user=root    # install-db maps OS root to root@localhost via unix_socket
else
  os_user=$(id -un)
  admin_user=$os_user  # install-db creates --user@localhost via unix_socket too
fi
as_my() { if [[ $(id -u) -eq 0 ]]; then runuser -u mysql -- "$@"; else "$@"; fi; }
admin() { mariadb-admin --no-defaults --socket="$dir/mysqld.sock" -u "$admin_user" --connect-timeout=2 "$@"; }
sql() { mariadb --no-defaults --socket="$dir/mysqld.sock" -u "$admin_user" --batch --skip-column-names "$@"; }
server_pid() { [[ -s $dir/mysqld.pid ]] && cat "$dir/mysqld.pid"; }

case $cmd in
  stop)
    pid=$(server_pid 2>/dev/null || true)
    [[ -n $pid ]] || exit 0
    admin shutdown > /dev/null 2>&1 || true
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2> /dev/null || exit 0
      sleep 0.1
    done
    kill -9 "$pid" 2> /dev/null || true
    exit 0
    ;;
  start)
    port=${3:?PORT}
    certs=${4:?CERTDIR}
    certs=$(cd "$certs" && pwd)
    rm -rf "$dir"
    mkdir -p "$dir/data"
    dir=$(cd "$dir" && pwd)
    chmod 755 "$dir"
    install -m 600 "$certs/server.key" "$dir/server.key"
    install -m 644 "$certs/server.pem" "$dir/server.pem"
    install -m 644 "$certs/ca.pem" "$dir/ca.pem"
    [[ $(id -u) -eq 0 ]] && chown -R mysql: "$dir"
    cat > "$dir/my.cnf" <<CNF
[mariadbd]
datadir = $dir/data
socket = $dir/mysqld.sock
pid-file = $dir/mysqld.pid
log-error = $dir/server.log
port = $port
bind-address = 127.0.0.1
skip-name-resolve
require_secure_transport = ON
ssl_cert = $dir/server.pem
ssl_key = $dir/server.key
ssl_ca = $dir/ca.pem
tls_version = TLSv1.2,TLSv1.3
max_connections = 200
performance_schema = OFF
innodb_buffer_pool_size = 16M
innodb_log_file_size = 16M
innodb_log_buffer_size = 2M
innodb_flush_log_at_trx_commit = 0
innodb_doublewrite = 0
key_buffer_size = 1M
aria_pagecache_buffer_size = 1M
query_cache_size = 0
thread_cache_size = 4
table_open_cache = 200
skip-log-bin
CNF
    [[ $(id -u) -eq 0 ]] && chown mysql: "$dir/my.cnf"
    as_my mariadb-install-db --defaults-file="$dir/my.cnf" --user="$os_user" --skip-test-db \
      --auth-root-authentication-method=socket > "$dir/install-db.log" 2>&1 ||
      { cat "$dir/install-db.log" >&2; exit 1; }
    # stdin/stdout detached so that a caller reading our output sees EOF.
    as_my setsid "$mariadbd" --defaults-file="$dir/my.cnf" < /dev/null > "$dir/stdout.log" 2>&1 &
    up=0
    for _ in $(seq 1 300); do
      if admin ping > /dev/null 2>&1; then up=1; break; fi
      kill -0 $! 2> /dev/null || break
      sleep 0.1
    done
    if [[ $up -ne 1 ]]; then
      echo "MariaDB did not start within 30 s" >&2
      cat "$dir/stdout.log" "$dir/server.log" >&2 2> /dev/null || true
      "$0" stop "$dir" || true
      exit 1
    fi
    sql -v <<SQL > /dev/null
INSTALL SONAME 'auth_ed25519';
CREATE DATABASE app;
CREATE USER native_user@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('native_pw');
CREATE USER ed_user@'%' IDENTIFIED VIA ed25519 USING PASSWORD('ed_pw');
CREATE USER sysbench@'%' IDENTIFIED BY 'sysbench_pw';
GRANT ALL ON app.* TO native_user@'%', ed_user@'%', sysbench@'%';
SQL
    secure=$(sql -e 'SELECT @@require_secure_transport')
    if [[ $secure != 1 ]]; then
      echo "require_secure_transport is '$secure', expected 1" >&2
      "$0" stop "$dir" || true
      exit 1
    fi
    ;;
  *) echo "unknown command $cmd" >&2; exit 2 ;;
esac
