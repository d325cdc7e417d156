#!/bin/sh
# Slipway nginx entrypoint, following the Docker Official Image's convention: when the
# command is nginx, run the configuration scripts in /docker-entrypoint.d/ first
# (*.sh that are executable are run, *.envsh that are executable are sourced), in
# version order, then exec the command. Set NGINX_ENTRYPOINT_QUIET_LOGS to silence it.
set -e

say() {
    [ -n "${NGINX_ENTRYPOINT_QUIET_LOGS:-}" ] || echo "$0: $*"
}

if [ "${1:-}" = nginx ] || [ "${1:-}" = nginx-debug ]; then
    scripts="$(find /docker-entrypoint.d/ -follow -mindepth 1 -maxdepth 1 -type f 2>/dev/null | sort -V)"
    if [ -n "$scripts" ]; then
        say "/docker-entrypoint.d/ is not empty, will attempt to perform configuration"
        say "Looking for shell scripts in /docker-entrypoint.d/"
        for f in $scripts; do
            case "$f" in
                *.envsh)
                    if [ -x "$f" ]; then say "Sourcing $f"; . "$f"; else say "Ignoring $f, not executable"; fi
                    ;;
                *.sh)
                    if [ -x "$f" ]; then say "Launching $f"; "$f"; else say "Ignoring $f, not executable"; fi
                    ;;
                *)
                    say "Ignoring $f"
                    ;;
            esac
        done
        say "Configuration complete; ready for start up"
    else
        say "No files found in /docker-entrypoint.d/, skipping configuration"
    fi
fi

exec "$@"
