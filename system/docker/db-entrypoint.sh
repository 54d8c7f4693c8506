#!/bin/sh
# First start: initdb, the role and database from POSTGRES_USER/POSTGRES_PASSWORD/POSTGRES_DB
# (the names the upstream postgres image reads), pg_stat_statements, and the app's role
# APP_DB_USER/APP_DB_PASSWORD, the exporter's (pg_monitor only) MONITOR_DB_USER/MONITOR_DB_PASSWORD;
# then run the server as
# PID 1 so a SIGKILL of the container's main process is a SIGKILL of the postmaster.
set -eu
: "${POSTGRES_USER:?set POSTGRES_USER}" "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
BIN=/usr/lib/postgresql/15/bin
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    "$BIN/initdb" -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust \
        --auth-host=scram-sha-256 -E UTF8 >/dev/null
    rm -f "$pwfile"
    echo "host all all 0.0.0.0/0 scram-sha-256" >>"$PGDATA/pg_hba.conf"
    "$BIN/pg_ctl" -D "$PGDATA" -o "-c listen_addresses='' -c shared_preload_libraries=pg_stat_statements" -w start >/dev/null
    psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres -q \
        -c "CREATE DATABASE \"$POSTGRES_DB\" OWNER \"$POSTGRES_USER\"" 2>/dev/null || true
    psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" -q \
        -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"
    if [ -n "${APP_DB_USER:-}" ]; then  # the app's own role: owner of its database, no superuser
        psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres -q \
            -v user="$APP_DB_USER" -v pw="${APP_DB_PASSWORD:?set APP_DB_PASSWORD}" \
            -v db="$POSTGRES_DB" <<'SQL'
CREATE ROLE :"user" LOGIN CREATEDB PASSWORD :'pw';
GRANT pg_monitor, pg_signal_backend TO :"user";
ALTER DATABASE :"db" OWNER TO :"user";
SQL
    fi
    if [ -n "${MONITOR_DB_USER:-}" ]; then  # the exporter's role: reads statistics, no more
        psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres -q \
            -v user="$MONITOR_DB_USER" -v pw="${MONITOR_DB_PASSWORD:?set MONITOR_DB_PASSWORD}" <<'SQL'
CREATE ROLE :"user" LOGIN PASSWORD :'pw';
GRANT pg_monitor TO :"user";
SQL
    fi
    "$BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
fi
exec "$BIN/postgres" -D "$PGDATA" -c listen_addresses='*' "$@"
