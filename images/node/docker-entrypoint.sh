#!/bin/sh
# Slipway node image entrypoint, following the Docker Official Image's convention:
# `docker run node:20 app.js` or `docker run node:20 --version` runs the argument(s)
# with node; anything that is a command on PATH (npm, sh, bash, ...) runs as given.
set -e

first="${1:-}"
case "$first" in
    -*) set -- node "$@" ;;
    *)
        if [ -n "$first" ]; then
            # not a command, or a plain (non-executable) file such as app.js
            if ! command -v "$first" >/dev/null 2>&1 || { [ -f "$first" ] && [ ! -x "$first" ]; }; then
                set -- node "$@"
            fi
        fi
        ;;
esac

exec "$@"
