#!/usr/bin/env bash
# Prepares an InfluxDB 1.x server for cellrig: the database (with a retention policy), one
# user per station that may write it, and one user for Grafana that may only read it.
#
#   INFLUX_URL=http://influxdb.lab.example:8086 \
#   INFLUX_ADMIN_USER=admin INFLUX_ADMIN_PASSWORD_FILE=/etc/influxdb/admin.password \
#   deploy/influxdb/setup-influxdb1.sh --station assb-lab-3 --station assb-lab-4 \
#       --grafana grafana --secrets /etc/cellrig/secrets
#
# Options: --database NAME (cellrig), --retention DURATION (INF: keep everything; e.g. 520w),
# --station NAME (repeat), --grafana NAME, --secrets FOLDER (where new passwords are written,
# one NAME.password file each, mode 600: copy a station's to its password_file).
# Users that exist already keep their password. Without INFLUX_ADMIN_USER the server is taken
# to have authentication off. Safe to run again.
set -euo pipefail

url=${INFLUX_URL:-http://localhost:8086}
database=cellrig
retention=INF
secrets=./cellrig-secrets
grafana=""
stations=()
while [ $# -gt 0 ]; do
    case "$1" in
        --database) database=$2; shift 2 ;;
        --retention) retention=$2; shift 2 ;;
        --station) stations+=("$2"); shift 2 ;;
        --grafana) grafana=$2; shift 2 ;;
        --secrets) secrets=$2; shift 2 ;;
        *) echo "unknown option $1 (see the comment at the top of $0)" >&2; exit 2 ;;
    esac
done
for name in "$database" "${stations[@]}" $grafana; do
    if ! [[ $name =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]]; then
        echo "'$name' is not a name this script accepts (letters, digits, '-', '_', '.')" >&2
        exit 2
    fi
done

auth=()
if [ -n "${INFLUX_ADMIN_USER:-}" ]; then
    password=${INFLUX_ADMIN_PASSWORD:-}
    if [ -n "${INFLUX_ADMIN_PASSWORD_FILE:-}" ]; then
        password=$(<"$INFLUX_ADMIN_PASSWORD_FILE")
    fi
    auth=(--user "$INFLUX_ADMIN_USER:$password")
fi

# Runs one InfluxQL statement; prints the JSON answer, fails on an error in it.
influxql() {
    local answer
    answer=$(curl --silent --show-error --fail-with-body "${auth[@]}" \
        --data-urlencode "q=$1" "$url/query") || { echo "InfluxDB: $answer" >&2; return 1; }
    if [[ $answer == *'"error"'* ]]; then
        echo "InfluxDB refused: ${answer}" >&2
        return 1
    fi
    printf '%s' "$answer"
}

user_exists() {
    [[ $(influxql "SHOW USERS") == *"[\"$1\","* ]]
}

# Creates user $1 with a new random password kept in $secrets/$1.password, unless it exists.
create_user() {
    if user_exists "$1"; then
        echo "user $1 exists: password unchanged"
        return
    fi
    mkdir -p "$secrets"
    chmod 700 "$secrets"
    local secret
    secret=$(openssl rand -hex 24)
    (umask 077 && printf '%s\n' "$secret" >"$secrets/$1.password")
    influxql "CREATE USER \"$1\" WITH PASSWORD '$secret'" >/dev/null
    echo "user $1 created: password in $secrets/$1.password"
}

influxql "CREATE DATABASE \"$database\"" >/dev/null
influxql "CREATE RETENTION POLICY \"cellrig\" ON \"$database\" DURATION $retention REPLICATION 1 DEFAULT" \
    >/dev/null 2>&1 ||
    influxql "ALTER RETENTION POLICY \"cellrig\" ON \"$database\" DURATION $retention DEFAULT" >/dev/null
echo "database $database: default retention policy cellrig, duration $retention"
for station in "${stations[@]}"; do
    create_user "$station"
    influxql "GRANT WRITE ON \"$database\" TO \"$station\"" >/dev/null
done
if [ -n "$grafana" ]; then
    create_user "$grafana"
    influxql "GRANT READ ON \"$database\" TO \"$grafana\"" >/dev/null
fi
