#!/usr/bin/env bash
# A throwaway PostgreSQL for the cluster tests (.ci/run and test/support/postgres.ts use it).
#   .ci/postgres.sh start DIR PORT   initdb a new cluster in DIR, start it on 127.0.0.1:PORT, print its URL
#   .ci/postgres.sh createdb URL NAME  create database NAME, print its URL
#   .ci/postgres.sh stop DIR         stop it and delete DIR
#   .ci/postgres.sh pause DIR        stop the server, keep DIR (the restart test)
#   .ci/postgres.sh resume DIR PORT  start it again on the same port
# PostgreSQL refuses to run as root: as root, DIR is handed to the `postgres` user (created by Debian's package) and
# the server runs as that user. Debian keeps pg_ctl/initdb in /usr/lib/postgresql/<version>/bin. Exit 3: no pg_ctl.
set -euo pipefail
bindir() {
  local d
  for d in $(command -v pg_ctl >/dev/null 2>&1 && dirname "$(readlink -f "$(command -v pg_ctl)")") /usr/lib/postgresql/*/bin; do
    if [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  done
  return 1
}
need_bindir() { B=$(bindir) || { echo "pg_ctl not found (Debian: apt-get install postgresql)" >&2; exit 3; }; }
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case "${1:-}" in
  start)
    need_bindir
    dir=$2 port=$3
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; fi
    as_owner "$B/initdb" -D "$dir/data" -A trust -U llink -E UTF8 >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    as_owner "$B/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null \
      || { cat "$dir/server.log" >&2; exit 1; }
    echo "postgres://llink@127.0.0.1:$port/postgres"
    ;;
  createdb)
    need_bindir
    url=$2 name=$3
    "$B/psql" "$url" -qAtc "CREATE DATABASE \"$name\"" >/dev/null
    echo "${url%/*}/$name"
    ;;
  pause)
    need_bindir
    as_owner "$B/pg_ctl" -D "$2/data" -m fast -w stop >/dev/null
    ;;
  resume)
    need_bindir
    dir=$2 port=$3
    as_owner "$B/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null \
      || { cat "$dir/server.log" >&2; exit 1; }
    ;;
  stop)
    dir=$2
    if [ -d "$dir/data" ] && B=$(bindir); then as_owner "$B/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true; fi
    rm -rf "$dir"
    ;;
  *) echo "usage: $0 start DIR PORT | createdb URL NAME | stop DIR | pause DIR | resume DIR PORT" >&2; exit 2 ;;
esac
