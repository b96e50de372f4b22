#!/usr/bin/env bash
# A throwaway PostgreSQL server (Debian's package) for the tests of the PostgreSQL store:
#   scripts/postgres-test-server.sh start DIR [PORT]   initdb + start; prints the store URL
#   scripts/postgres-test-server.sh stop DIR           stops it and removes DIR
# The server listens on 127.0.0.1:PORT (default 25432, below the kernel's ephemeral port range,
# so no outgoing connection can hold it) with password (SCRAM) authentication, so
# a wrong password is refused as it would be on a real host. It also listens on 127.0.0.2, so that
# a test can cut one client off with nftables (a client that connects there) and not the others.
# PG_LISTEN (addresses, comma-separated) and PG_CLIENTS (a CIDR allowed with a password) change
# that, for a server on a host of its own (a network namespace). Run as root, the server runs as the
# `postgres` user (PostgreSQL refuses to run as root).
set -euo pipefail
cmd=${1:?start|stop}
dir=${2:?data directory}
port=${3:-25432}
listen=${PG_LISTEN:-127.0.0.1,127.0.0.2}
clients=${PG_CLIENTS:-127.0.0.2/32}
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$pgbin" ]; then
  echo "PostgreSQL server not installed (apt-get install postgresql)" >&2
  exit 2
fi
as_owner() {
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi
}
case $cmd in
start)
  mkdir -p "$dir"
  chmod 700 "$dir"
  # The server runs as `postgres`: it must be able to reach DIR through its parents.
  chmod o+x "$(dirname "$dir")"
  printf 'starling-test\n' >"$dir/pw"
  [ "$(id -u)" != 0 ] || chown -R postgres "$dir"
  if ! as_owner "cd /tmp && $pgbin/initdb -D '$dir/data' -U starling --pwfile='$dir/pw' -A scram-sha-256 >'$dir/initdb.log' 2>&1"; then
    rm -f "$dir/pw"
    echo "initdb failed; see $dir/initdb.log:" >&2
    tail -5 "$dir/initdb.log" >&2
    exit 1
  fi
  rm -f "$dir/pw"
  as_owner "echo 'host all all $clients scram-sha-256' >> '$dir/data/pg_hba.conf'"
  if ! as_owner "cd /tmp && $pgbin/pg_ctl -D '$dir/data' -w -o \"-p $port -k '$dir' -c listen_addresses=$listen -c max_connections=300 -c fsync=off\" -l '$dir/server.log' start >/dev/null"; then
    echo "PostgreSQL did not start on 127.0.0.1:$port; see $dir/server.log:" >&2
    tail -5 "$dir/server.log" >&2
    exit 1
  fi
  # pg_ctl -w waits on the Unix socket; a TCP address it could not bind is only a warning in the
  # log (another socket holds the port), so say so here rather than leave the tests to guess.
  if grep -q "could not bind" "$dir/server.log"; then
    echo "PostgreSQL started but could not bind every address on port $port (pick another port):" >&2
    grep -A1 "could not bind" "$dir/server.log" | head -4 >&2
    as_owner "cd /tmp && $pgbin/pg_ctl -D '$dir/data' -m immediate stop >/dev/null 2>&1" || true
    exit 1
  fi
  # Through the Unix socket: PG_LISTEN need not include 127.0.0.1.
  as_owner "PGPASSWORD=starling-test psql -h '$dir' -p $port -U starling -d postgres -qc 'CREATE DATABASE starling_test'" >/dev/null
  echo "postgres://starling:starling-test@${listen%%,*}:$port/starling_test"
  ;;
stop)
  [ ! -d "$dir/data" ] || as_owner "cd /tmp && $pgbin/pg_ctl -D '$dir/data' -m immediate stop >/dev/null 2>&1" || true
  rm -rf "$dir"
  ;;
*)
  echo "usage: $0 start|stop DIR [PORT]" >&2
  exit 2
  ;;
esac
