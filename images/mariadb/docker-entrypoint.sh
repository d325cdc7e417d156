#!/usr/bin/env bash
# Slipway mariadb entrypoint. It follows the Docker Official Image's documented
# behaviour, which lessons and learners' compose files rely on. Each MARIADB_* variable
# may also be given under its MYSQL_* name, and as VAR_FILE (read from a file):
#
#   MARIADB_ROOT_PASSWORD / MYSQL_ROOT_PASSWORD        root's password
#   MARIADB_ALLOW_EMPTY_ROOT_PASSWORD / MYSQL_ALLOW_EMPTY_PASSWORD   root without one
#   MARIADB_RANDOM_ROOT_PASSWORD / MYSQL_RANDOM_ROOT_PASSWORD   generate and print one
#   MARIADB_ROOT_HOST / MYSQL_ROOT_HOST                where root may connect from (%)
#   MARIADB_DATABASE / MYSQL_DATABASE                  a database to create
#   MARIADB_USER / MYSQL_USER, MARIADB_PASSWORD / MYSQL_PASSWORD
#                                                      a user with all rights on it
#   MARIADB_INITDB_SKIP_TZINFO / MYSQL_INITDB_SKIP_TZINFO   skip loading time zones
#
# On the first start (no mysql/ in the data directory) one of the root password
# options is required. The database is created with mariadb-install-db, set up through
# a server that listens on its socket only, and /docker-entrypoint-initdb.d/* is run
# (*.sh run or sourced, *.sql, *.sql.gz, *.sql.xz, *.sql.zst fed to the client). A
# "healthcheck" user is created for healthcheck.sh. Started as root, it drops to the
# user mysql (setpriv replaces the official image's gosu). The server then runs in the
# foreground and listens on all addresses, port 3306.
set -eo pipefail
shopt -s nullglob

note() { printf '%s [Note] [Entrypoint]: %s\n' "$(date --rfc-3339=seconds)" "$*"; }
warn() { printf '%s [Warn] [Entrypoint]: %s\n' "$(date --rfc-3339=seconds)" "$*" >&2; }
die()  { printf '%s [ERROR] [Entrypoint]: %s\n' "$(date --rfc-3339=seconds)" "$*" >&2; exit 1; }

# file_env VAR [DEFAULT]
file_env() {
    local var="$1" def="${2:-}"
    local file_var="${var}_FILE"
    local val="$def"
    if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
        die "Both $var and $file_var are set (but are exclusive)"
    fi
    if [ -n "${!var:-}" ]; then
        val="${!var}"
    elif [ -n "${!file_var:-}" ]; then
        val="$(<"${!file_var}")"
    fi
    export "$var"="$val"
    unset "$file_var"
}

# both_env NAME [DEFAULT]: MARIADB_NAME from itself or from MYSQL_NAME (and their _FILE
# forms); afterwards both hold the same value.
both_env() {
    local name="$1" def="${2:-}"
    local m="MARIADB_$name" y="MYSQL_$name"
    file_env "$y" "$def"
    file_env "$m" "${!y}"
    export "$y"="${!m}"
}

# "mariadbd --verbose --help" prints the effective settings; it also fails early on a
# broken configuration.
server_setting() {
    local name="$1"; shift
    "$@" --verbose --help 2>/dev/null \
        | awk -v n="$name" '$1 == n && /^[^ \t]/ { sub(/^[^ \t]+[ \t]+/, ""); print; exit }'
}

check_config() {
    local errors
    if ! errors="$("$@" --verbose --help 2>&1 >/dev/null)"; then
        die $'mariadbd failed while attempting to check config\n\tcommand was: '"$* --verbose --help"$'\n\t'"$errors"
    fi
}

load_settings() {
    DATADIR="$(server_setting datadir "$@")"
    SOCKET="$(server_setting socket "$@")"
    PORT="$(server_setting port "$@")"
    DATADIR="${DATADIR%/}"

    both_env ROOT_HOST '%'
    both_env DATABASE
    both_env USER
    both_env PASSWORD
    both_env ROOT_PASSWORD
    file_env MARIADB_PASSWORD_HASH
    file_env MARIADB_ROOT_PASSWORD_HASH
    : "${MARIADB_ALLOW_EMPTY_ROOT_PASSWORD:=${MYSQL_ALLOW_EMPTY_PASSWORD:-}}"
    export MARIADB_ALLOW_EMPTY_ROOT_PASSWORD MYSQL_ALLOW_EMPTY_PASSWORD="$MARIADB_ALLOW_EMPTY_ROOT_PASSWORD"
    : "${MARIADB_RANDOM_ROOT_PASSWORD:=${MYSQL_RANDOM_ROOT_PASSWORD:-}}"
    export MARIADB_RANDOM_ROOT_PASSWORD MYSQL_RANDOM_ROOT_PASSWORD="$MARIADB_RANDOM_ROOT_PASSWORD"
    : "${MARIADB_INITDB_SKIP_TZINFO:=${MYSQL_INITDB_SKIP_TZINFO:-}}"
    export MARIADB_INITDB_SKIP_TZINFO MYSQL_INITDB_SKIP_TZINFO="$MARIADB_INITDB_SKIP_TZINFO"

    DATABASE_ALREADY_EXISTS=
    if [ -d "$DATADIR/mysql" ]; then
        DATABASE_ALREADY_EXISTS=true
    fi
}

prepare_dirs() {
    mkdir -p "$DATADIR"
    if [ "$(id -u)" = 0 ]; then
        find "$DATADIR" \! -user mysql -exec chown mysql: '{}' +
        if [ "${SOCKET:0:1}" != '@' ]; then
            mkdir -p "${SOCKET%/*}"
            find "${SOCKET%/*}" -maxdepth 0 \! -user mysql -exec chown mysql: '{}' \;
        fi
    fi
}

require_root_password_option() {
    if [ -z "$MARIADB_ROOT_PASSWORD" ] && [ -z "$MARIADB_ROOT_PASSWORD_HASH" ] \
        && [ -z "$MARIADB_ALLOW_EMPTY_ROOT_PASSWORD" ] && [ -z "$MARIADB_RANDOM_ROOT_PASSWORD" ]; then
        die $'Database is uninitialized and password option is not specified\n\tYou need to specify one of MARIADB_ROOT_PASSWORD, MARIADB_ROOT_PASSWORD_HASH, MARIADB_ALLOW_EMPTY_ROOT_PASSWORD and MARIADB_RANDOM_ROOT_PASSWORD'
    fi
    if [ -n "$MARIADB_PASSWORD" ] && [ -n "$MARIADB_PASSWORD_HASH" ]; then
        die "Cannot specify MARIADB_PASSWORD_HASH and MARIADB_PASSWORD option."
    fi
}

# The client as root over the socket; the password comes from MYSQL_PWD.
client() {
    local db=()
    [ -z "$MARIADB_DATABASE" ] || db=(--database="$MARIADB_DATABASE")
    mariadb --protocol=socket -uroot -hlocalhost --socket="$SOCKET" "${db[@]}" "$@"
}

# sql [--no-root-password] [client args]: run SQL from stdin.
sql() {
    if [ "${1:-}" = --no-root-password ]; then
        shift
        MYSQL_PWD='' client "$@"
    else
        MYSQL_PWD="$MARIADB_ROOT_PASSWORD" client "$@"
    fi
}

# Escape a value for a single-quoted SQL string literal.
sql_string() {
    local s="${1//\\/\\\\}"
    s="${s//$'\n'/\\n}"
    printf '%s' "${s//\'/\\\'}"
}

random_password() {
    local p
    p="$(tr -dc 'A-Za-z0-9,.;:!@%^*()_+=-' </dev/urandom | head -c 32)" || true
    printf '%s' "$p"
}

temp_server_start() {
    "$@" --skip-networking --default-time-zone=SYSTEM --socket="$SOCKET" --wsrep_on=OFF \
        --expire-logs-days=0 --skip-slave-start \
        --loose-innodb_buffer_pool_load_at_startup=0 &
    TEMP_PID=$!
    note "Waiting for server startup"
    local extra=() i
    [ -n "$DATABASE_ALREADY_EXISTS" ] || extra=(--no-root-password)
    for i in {30..0}; do
        if sql "${extra[@]}" --database=mysql <<<'SELECT 1' &>/dev/null; then
            break
        fi
        if ! kill -0 "$TEMP_PID" 2>/dev/null; then
            die "Unable to start server."
        fi
        sleep 1
    done
    [ "$i" != 0 ] || die "Unable to start server."
}

temp_server_stop() {
    kill "$TEMP_PID"
    wait "$TEMP_PID"
}

install_db() {
    note "Initializing database files"
    local args=()
    # "Other options are passed to mariadbd": the server's own options, minus any with
    # spaces, which mariadb-install-db cannot pass on.
    local a
    for a in "${@:2}"; do
        if [[ "$a" =~ [[:space:]] ]]; then
            warn "Not passing argument '$a' to mariadb-install-db (it contains whitespace)"
        else
            args+=("$a")
        fi
    done
    mariadb-install-db --datadir="$DATADIR" --rpm --auth-root-authentication-method=normal \
        "${args[@]}" \
        --cross-bootstrap --skip-test-db --old-mode='UTF8_IS_UTF8MB3' \
        --default-time-zone=SYSTEM --enforce-storage-engine= --skip-log-bin \
        --expire-logs-days=0 --loose-innodb_buffer_pool_load_at_startup=0 \
        --loose-innodb_buffer_pool_dump_at_shutdown=0
    note "Database files initialized"
}

# SQL for the users healthcheck.sh logs in as, and its option file.
healthcheck_users() {
    local pass host
    pass="$(random_password)"
    for host in 127.0.0.1 ::1 localhost; do
        printf "CREATE USER IF NOT EXISTS healthcheck@'%s' IDENTIFIED BY '%s';\n" "$host" "$(sql_string "$pass")"
        printf "SET PASSWORD FOR healthcheck@'%s' = PASSWORD('%s');\n" "$host" "$(sql_string "$pass")"
        printf "GRANT USAGE ON *.* TO healthcheck@'%s';\n" "$host"
    done
    (umask 0077; printf '[mariadb-client]\nport=%s\nsocket=%s\nuser=healthcheck\npassword=%s\n' \
        "$PORT" "$SOCKET" "$pass" >"$DATADIR/.my-healthcheck.cnf")
}

setup_db() {
    if [ -z "$MARIADB_INITDB_SKIP_TZINFO" ]; then
        mariadb-tzinfo-to-sql --skip-write-binlog /usr/share/zoneinfo \
            | sql --no-root-password --database=mysql
    fi
    if [ -n "$MARIADB_RANDOM_ROOT_PASSWORD" ]; then
        MARIADB_ROOT_PASSWORD="$(random_password)"
        export MARIADB_ROOT_PASSWORD MYSQL_ROOT_PASSWORD="$MARIADB_ROOT_PASSWORD"
        note "GENERATED ROOT PASSWORD: $MARIADB_ROOT_PASSWORD"
    fi

    local root_pw root_local= root_remote= database= user= grants= hc
    root_pw="$(sql_string "$MARIADB_ROOT_PASSWORD")"
    if [ -n "$MARIADB_ROOT_PASSWORD_HASH" ]; then
        root_local="SET PASSWORD FOR 'root'@'localhost' = '${MARIADB_ROOT_PASSWORD_HASH}';"
    else
        root_local="SET PASSWORD FOR 'root'@'localhost' = PASSWORD('${root_pw}');"
    fi
    if [ -n "$MARIADB_ROOT_HOST" ] && [ "$MARIADB_ROOT_HOST" != localhost ]; then
        if [ -n "$MARIADB_ROOT_PASSWORD_HASH" ]; then
            root_remote="CREATE USER 'root'@'${MARIADB_ROOT_HOST}' IDENTIFIED BY PASSWORD '${MARIADB_ROOT_PASSWORD_HASH}';"
        else
            root_remote="CREATE USER 'root'@'${MARIADB_ROOT_HOST}' IDENTIFIED BY '${root_pw}';"
        fi
        root_remote+=" GRANT ALL ON *.* TO 'root'@'${MARIADB_ROOT_HOST}' WITH GRANT OPTION;"
        root_remote+=" GRANT PROXY ON ''@'%' TO 'root'@'${MARIADB_ROOT_HOST}' WITH GRANT OPTION;"
    fi
    if [ -n "$MARIADB_DATABASE" ]; then
        note "Creating database ${MARIADB_DATABASE}"
        database="CREATE DATABASE IF NOT EXISTS \`${MARIADB_DATABASE}\`;"
    fi
    if [ -n "$MARIADB_USER" ] && { [ -n "$MARIADB_PASSWORD" ] || [ -n "$MARIADB_PASSWORD_HASH" ]; }; then
        note "Creating user ${MARIADB_USER}"
        if [ -n "$MARIADB_PASSWORD_HASH" ]; then
            user="CREATE USER '${MARIADB_USER}'@'%' IDENTIFIED BY PASSWORD '${MARIADB_PASSWORD_HASH}';"
        else
            user="CREATE USER '${MARIADB_USER}'@'%' IDENTIFIED BY '$(sql_string "$MARIADB_PASSWORD")';"
        fi
        if [ -n "$MARIADB_DATABASE" ]; then
            note "Giving user ${MARIADB_USER} access to schema ${MARIADB_DATABASE}"
            grants="GRANT ALL ON \`${MARIADB_DATABASE//_/\\_}\`.* TO '${MARIADB_USER}'@'%';"
        fi
    elif [ -n "$MARIADB_USER" ]; then
        warn "MARIADB_USER is set but MARIADB_PASSWORD is not; the user is not created"
    fi
    hc="$(healthcheck_users)"

    note "Securing system users (equivalent to running mysql_secure_installation)"
    sql --no-root-password --database=mysql --binary-mode <<EOSQL
SET @orig_sql_log_bin = @@SESSION.SQL_LOG_BIN;
SET @@SESSION.SQL_LOG_BIN = 0;
SET @@SESSION.SQL_MODE = REPLACE(@@SESSION.SQL_MODE, 'NO_BACKSLASH_ESCAPES', '');
DROP USER IF EXISTS root@'127.0.0.1', root@'::1';
EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS root@\'', @@hostname, '\'');
${root_local}
${root_remote}
${hc}
SET @@SESSION.SQL_LOG_BIN = @orig_sql_log_bin;
${database}
${user}
${grants}
EOSQL
}

run_init_files() {
    local f
    echo
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
            *.sh)
                if [ -x "$f" ]; then
                    note "$0: running $f"; "$f"
                else
                    note "$0: sourcing $f"; . "$f"
                fi
                ;;
            *.sql)     note "$0: running $f"; sql <"$f"; echo ;;
            *.sql.gz)  note "$0: running $f"; gunzip -c "$f" | sql; echo ;;
            *.sql.xz)  note "$0: running $f"; xzcat "$f" | sql; echo ;;
            *.sql.zst) note "$0: running $f"; zstd -dc "$f" | sql; echo ;;
            *)         warn "$0: ignoring $f" ;;
        esac
        echo
    done
}

wants_help() {
    local a
    for a; do
        case "$a" in
            -'?'|--help|--print-defaults|-V|--version) return 0 ;;
        esac
    done
    return 1
}

main() {
    if [ "${1:0:1}" = '-' ]; then
        set -- mariadbd "$@"
    fi

    if { [ "$1" = mariadbd ] || [ "$1" = mysqld ]; } && ! wants_help "$@"; then
        note "Entrypoint script for MariaDB Server $("$1" --version | awk '{ print $3 }') started."
        check_config "$@"
        load_settings "$@"
        prepare_dirs
        if [ "$(id -u)" = 0 ]; then
            note "Switching to dedicated user 'mysql'"
            export HOME=/var/lib/mysql
            exec setpriv --reuid=mysql --regid=mysql --init-groups "${BASH_SOURCE[0]}" "$@"
        fi

        if [ -z "$DATABASE_ALREADY_EXISTS" ]; then
            require_root_password_option
            ls /docker-entrypoint-initdb.d/ >/dev/null
            install_db "$@"
            note "Starting temporary server"
            temp_server_start "$@"
            note "Temporary server started."
            setup_db
            run_init_files
            note "Stopping temporary server"
            temp_server_stop
            note "Temporary server stopped"
            echo
            note "MariaDB init process done. Ready for start up."
            echo
        fi
        # Keep passwords out of the server's environment.
        local p
        for p in ROOT_PASSWORD ROOT_PASSWORD_HASH PASSWORD PASSWORD_HASH; do
            unset "MARIADB_$p" "MYSQL_$p" "MARIADB_${p}_FILE" "MYSQL_${p}_FILE"
        done
    fi

    exec "$@"
}

main "$@"
