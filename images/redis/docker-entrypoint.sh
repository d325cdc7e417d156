#!/bin/sh
# Slipway redis entrypoint, following the Docker Official Image's conventions:
#   - a first argument that is an option (-x, --port 7000) or a *.conf file is given to
#     redis-server;
#   - redis-server started as root drops to the user redis (after giving it the files in
#     the working directory, /data), and runs with umask 0077;
#   - protected mode is off unless configured, because the official image builds Redis
#     with protected mode off by default: containers are reached over their network, not
#     over loopback. With no config file Redis listens on all interfaces and stays in the
#     foreground, as in the official image.
set -e

case "${1:-}" in
    -*|*.conf) set -- redis-server "$@" ;;
esac

if [ "${1:-}" = redis-server ] && [ "$(id -u)" = 0 ]; then
    find . \! -user redis -exec chown redis '{}' +
    exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi

if [ "${1:-}" = redis-server ]; then
    # Is protected-mode set on the command line, or in the config file (the first
    # argument after redis-server that is not an option)?
    configured=
    for arg in "$@"; do
        [ "$arg" = --protected-mode ] && configured=1
    done
    conf="${2:-}"
    case "$conf" in
        ''|-*) ;;
        *) if [ -r "$conf" ] && grep -Eqi '^[[:space:]]*protected-mode[[:space:]]' "$conf"; then configured=1; fi ;;
    esac
    if [ -z "$configured" ]; then
        set -- "$@" --protected-mode no
    fi
fi

um="$(umask)"
if [ "$um" = 0022 ] || [ "$um" = 022 ]; then
    umask 0077
fi

exec "$@"
