#!/bin/sh
# Container entrypoint: `server` (default) runs tms-server, `migrate` applies migrations,
# `admin ARGS...` runs tms-admin; anything else is executed as given.
set -eu
cmd="${1:-server}"
[ "$#" -gt 0 ] && shift
case "$cmd" in
    server)  exec tms-server "$@" ;;
    migrate) exec tms-admin migrate "$@" ;;
    admin)   exec tms-admin "$@" ;;
    *)       exec "$cmd" "$@" ;;
esac
