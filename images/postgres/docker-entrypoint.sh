#!/usr/bin/env bash
# Slipway postgres entrypoint. It follows the Docker Official Image's documented
# behaviour, which lessons and learners' compose files rely on:
#
#   POSTGRES_PASSWORD          superuser password; required to initialise a new
#                              database unless POSTGRES_HOST_AUTH_METHOD=trust
#   POSTGRES_USER              superuser name (default: postgres)
#   POSTGRES_DB                database created at first start (default: the user name)
#   POSTGRES_INITDB_ARGS       extra arguments for initdb
#   POSTGRES_INITDB_WALDIR     a separate directory for the write-ahead log
#   POSTGRES_HOST_AUTH_METHOD  auth method for non-local connections (default:
#                              the server's password_encryption, scram-sha-256)
#   PGDATA                     data directory (default: /var/lib/postgresql/data)
#   VAR_FILE                   for each of the POSTGRES_* above: read VAR from a file
#                              (Docker secrets)
#
# On the first start (no PG_VERSION in $PGDATA) it runs initdb, opens the server to
# the network with password authentication, creates POSTGRES_DB, and runs
# /docker-entrypoint-initdb.d/* (*.sh run or sourced, *.sql and compressed *.sql.gz,
# *.sql.xz, *.sql.zst fed to psql), using a server that listens on the Unix socket only.
# Started as root, it fixes ownership and drops to the user postgres (setpriv replaces
# the official image's gosu). The server then runs in the foreground.
set -Eeo pipefail

log() { printf '%s\n' "$*"; }

# file_env VAR [DEFAULT]: VAR, or the contents of the file named by VAR_FILE, or DEFAULT.
file_env() {
    local var="$1" def="${2:-}"
    local file_var="${var}_FILE"
    local val="$def"
    if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
        printf >&2 'error: both %s and %s are set (but are exclusive)\n' "$var" "$file_var"
        exit 1
    fi
    if [ -n "${!var:-}" ]; then
        val="${!var}"
    elif [ -n "${!file_var:-}" ]; then
        val="$(<"${!file_var}")"
    fi
    export "$var"="$val"
    unset "$file_var"
}

load_settings() {
    file_env POSTGRES_PASSWORD
    file_env POSTGRES_USER postgres
    file_env POSTGRES_DB "$POSTGRES_USER"
    file_env POSTGRES_INITDB_ARGS
    : "${POSTGRES_HOST_AUTH_METHOD:=}"
    : "${PGDATA:=/var/lib/postgresql/data}"
    export PGDATA
    DATABASE_ALREADY_EXISTS=
    if [ -s "$PGDATA/PG_VERSION" ]; then
        DATABASE_ALREADY_EXISTS=true
    fi
}

# As root: create the directories and hand them to postgres.
prepare_dirs() {
    mkdir -p "$PGDATA"
    chmod 00700 "$PGDATA" || :
    mkdir -p /var/run/postgresql || :
    chmod 03775 /var/run/postgresql || :
    if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
        mkdir -p "$POSTGRES_INITDB_WALDIR"
        [ "$(id -u)" != 0 ] || find "$POSTGRES_INITDB_WALDIR" \! -user postgres -exec chown postgres '{}' +
        chmod 700 "$POSTGRES_INITDB_WALDIR"
    fi
    if [ "$(id -u)" = 0 ]; then
        find "$PGDATA" \! -user postgres -exec chown postgres '{}' +
        find /var/run/postgresql \! -user postgres -exec chown postgres '{}' +
    fi
}

require_password() {
    if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
        cat >&2 <<'EOM'
Error: Database is uninitialized and superuser password is not specified.
       You must specify POSTGRES_PASSWORD to a non-empty value for the
       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".

       You may also use "POSTGRES_HOST_AUTH_METHOD=trust" to allow all
       connections without a password. This is *not* recommended.

       See PostgreSQL documentation about "trust":
       https://www.postgresql.org/docs/current/auth-trust.html
EOM
        exit 1
    fi
    if [ "$POSTGRES_HOST_AUTH_METHOD" = trust ]; then
        cat >&2 <<'EOM'
********************************************************************************
WARNING: POSTGRES_HOST_AUTH_METHOD has been set to "trust". This will allow
         anyone with access to the Postgres port to access your database without
         a password, even if POSTGRES_PASSWORD is set.
         It is not recommended; use "-e POSTGRES_PASSWORD=password" instead.
********************************************************************************
EOM
    fi
}

run_initdb() {
    local args=()
    if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
        args+=(--waldir "$POSTGRES_INITDB_WALDIR")
    fi
    # initdb's --pwfile rejects an empty file, hence the newline.
    # POSTGRES_INITDB_ARGS is split like a shell would split it.
    eval 'initdb --username="$POSTGRES_USER" --pwfile=<(printf "%s\n" "$POSTGRES_PASSWORD") '"$POSTGRES_INITDB_ARGS"' "${args[@]}" "$@"'
}

# Let every host in with the configured method (default: what password_encryption
# says, scram-sha-256). Local socket connections keep initdb's default.
open_hba() {
    local method="$POSTGRES_HOST_AUTH_METHOD"
    if [ -z "$method" ]; then
        method="$(postgres -C password_encryption "$@")"
    fi
    {
        printf '\n'
        [ "$method" != trust ] || printf '# warning: trust is enabled for all connections\n'
        printf 'host all all all %s\n' "$method"
    } >>"$PGDATA/pg_hba.conf"
}

sql() {
    local cmd=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
    [ -z "$POSTGRES_DB" ] || cmd+=(--dbname "$POSTGRES_DB")
    PGHOST= PGHOSTADDR= "${cmd[@]}" "$@"
}

temp_server_start() {
    # Unix socket only, so nothing reaches the database before it is ready.
    set -- "$@" -c listen_addresses='' -p "${PGPORT:-5432}"
    NOTIFY_SOCKET= PGUSER="${PGUSER:-$POSTGRES_USER}" \
        pg_ctl -D "$PGDATA" -o "$(printf '%q ' "$@")" -w start
}

temp_server_stop() {
    PGUSER="${PGUSER:-postgres}" pg_ctl -D "$PGDATA" -m fast -w stop
}

create_db() {
    local exists
    exists="$(POSTGRES_DB= sql --dbname postgres --set db="$POSTGRES_DB" --tuples-only <<<"SELECT 1 FROM pg_database WHERE datname = :'db';")"
    if [ -z "${exists// /}" ]; then
        POSTGRES_DB= sql --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
        printf '\n'
    fi
}

run_init_files() {
    local f
    printf '\n'
    for f in /docker-entrypoint-initdb.d/*; do
        [ -e "$f" ] || continue
        case "$f" in
            *.sh)
                if [ -x "$f" ]; then
                    log "$0: running $f"; "$f"
                else
                    log "$0: sourcing $f"; . "$f"
                fi
                ;;
            *.sql)     log "$0: running $f"; sql -f "$f"; printf '\n' ;;
            *.sql.gz)  log "$0: running $f"; gunzip -c "$f" | sql; printf '\n' ;;
            *.sql.xz)  log "$0: running $f"; xzcat "$f" | sql; printf '\n' ;;
            *.sql.zst) log "$0: running $f"; zstd -dc "$f" | sql; printf '\n' ;;
            *)         log "$0: ignoring $f" ;;
        esac
        printf '\n'
    done
}

wants_help() {
    local a
    for a; do
        case "$a" in
            -'?'|--help|--describe-config|-V|--version) return 0 ;;
        esac
    done
    return 1
}

main() {
    # `docker run postgres -c shared_buffers=256MB` passes options to the server.
    if [ "${1:0:1}" = '-' ]; then
        set -- postgres "$@"
    fi

    if [ "$1" = postgres ] && ! wants_help "$@"; then
        load_settings
        prepare_dirs
        if [ "$(id -u)" = 0 ]; then
            export HOME=/var/lib/postgresql
            exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
        fi

        if [ -z "$DATABASE_ALREADY_EXISTS" ]; then
            require_password
            ls /docker-entrypoint-initdb.d/ >/dev/null
            run_initdb
            # the server's own options: what follows "postgres" on the command line
            open_hba "${@:2}"
            export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
            temp_server_start "${@:2}"
            create_db
            run_init_files
            temp_server_stop
            unset PGPASSWORD
            printf '\nPostgreSQL init process complete; ready for start up.\n\n'
        else
            printf '\nPostgreSQL Database directory appears to contain a database; Skipping initialization\n\n'
        fi
    fi

    exec "$@"
}

main "$@"
