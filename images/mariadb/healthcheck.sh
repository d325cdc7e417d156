#!/bin/bash
# healthcheck.sh [--connect] [--innodb_initialized] - a small version of the official
# image's container health check. It logs in as the "healthcheck" user the entrypoint
# created (credentials in <datadir>/.my-healthcheck.cnf). With no test named, it runs
# --connect.
#   --connect             the server accepts a login over TCP (so networking is up)
#   --innodb_initialized  InnoDB has finished starting
# Use it in compose as:  test: ["CMD", "healthcheck.sh", "--connect", "--innodb_initialized"]
# (`mysqladmin ping -h localhost` works too.)
set -eo pipefail

datadir="${DATADIR:-/var/lib/mysql}"
cnf="$datadir/.my-healthcheck.cnf"
opts=()
[ -r "$cnf" ] && opts=(--defaults-extra-file="$cnf")

tests=()
for a; do
    case "$a" in
        --connect|--innodb_initialized) tests+=("$a") ;;
        --defaults-file=*|--defaults-extra-file=*) opts=("$a") ;;
        --su-mysql|--no-defaults|--mariadbupgrade|--replication*|--galera*|--innodb_*) ;;
        *) echo "healthcheck.sh: unknown option $a" >&2; exit 1 ;;
    esac
done
[ "${#tests[@]}" -gt 0 ] || tests=(--connect)

for t in "${tests[@]}"; do
    case "$t" in
        --connect)
            mariadb "${opts[@]}" --protocol=tcp -h 127.0.0.1 -e 'SELECT 1' >/dev/null
            ;;
        --innodb_initialized)
            r="$(mariadb "${opts[@]}" -s -N -e "SELECT 1 FROM information_schema.ENGINES WHERE engine = 'innodb' AND support IN ('YES', 'DEFAULT', 'ENABLED')")"
            [ "$r" = 1 ]
            ;;
    esac
done
