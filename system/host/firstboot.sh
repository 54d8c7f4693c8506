#!/bin/sh
# First boot of a host made from the opsdrill host image (the part cloud-init plays on a real
# machine): read the seed the creator mounted at /etc/opsdrill-seed (ssh host key, the ops
# user's authorized_keys, the database and API secrets), install them, create the app's
# database role and database, and apply the schema. Idempotent: a reboot changes nothing.
set -eu
SEED=/etc/opsdrill-seed
[ -d "$SEED" ] || { echo "firstboot: no seed at $SEED" >&2; exit 1; }
install -m 600 "$SEED/ssh_host_ed25519_key" /etc/ssh/ssh_host_ed25519_key
install -m 644 "$SEED/ssh_host_ed25519_key.pub" /etc/ssh/ssh_host_ed25519_key.pub
install -d -m 700 -o ops -g ops /home/ops/.ssh
install -m 600 -o ops -g ops "$SEED/authorized_keys" /home/ops/.ssh/authorized_keys
. "$SEED/secrets"   # DB_PASSWORD, ADMIN_PASSWORD, API_KEY, REDIS_PASSWORD (optional)
umask 027
# Redis answers on the host's network with a password, or on loopback alone without one
REDIS_URL=redis://127.0.0.1:6379/0
if [ -n "${REDIS_PASSWORD:-}" ]; then
    printf 'bind 0.0.0.0\nrequirepass %s\n' "$REDIS_PASSWORD" >/etc/redis/opsdrill.conf
    REDIS_URL="redis://:$REDIS_PASSWORD@127.0.0.1:6379/0"
fi
# the app reaches PostgreSQL through staging's Toxiproxy (ts-forecast-toxiproxy.service)
cat >/etc/ts-forecast/env.new <<ENV
DATABASE_URL=postgresql://nf_app:$DB_PASSWORD@127.0.0.1:15432/ts_forecast_system
NF_DIRECT_DATABASE_URL=postgresql://nf_app:$DB_PASSWORD@127.0.0.1:5432/ts_forecast_system
NF_API_KEY=$API_KEY
NF_REDIS_URL=$REDIS_URL
ENV
chgrp ts-forecast /etc/ts-forecast/env.new && mv /etc/ts-forecast/env.new /etc/ts-forecast/env
runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -v pw="$DB_PASSWORD" -v apw="$ADMIN_PASSWORD" <<'SQL'
SELECT format('CREATE ROLE nf_app LOGIN CREATEDB PASSWORD %L', :'pw')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'nf_app') \gexec
ALTER ROLE nf_app PASSWORD :'pw';
ALTER ROLE postgres PASSWORD :'apw';
GRANT pg_monitor, pg_signal_backend TO nf_app;
SELECT 'CREATE ROLE prometheus LOGIN'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'prometheus') \gexec
GRANT pg_monitor TO prometheus;
SELECT 'CREATE DATABASE ts_forecast_system OWNER nf_app'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'ts_forecast_system') \gexec
\c ts_forecast_system
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
SQL
# the app's path to the database is the proxy's: wait for it to listen (bounded)
for _ in $(seq 60); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', 15432), 1).close()" \
        2>/dev/null && break
    sleep 0.5
done
runuser -u ts-forecast -- /usr/local/bin/ts-forecast-ops migrate
runuser -u ts-forecast -- /usr/local/bin/ts-forecast-ops seed
