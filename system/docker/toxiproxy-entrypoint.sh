#!/bin/sh
# Bridges between the compose network and the loopback-only embedded Toxiproxy, then the
# server itself as PID 1's child-free exec (a SIGKILL of the container kills the server).
set -eu
DB_ADDR=${TOXIPROXY_DB_ADDR:-db:5432}
socat TCP-LISTEN:5433,bind=127.0.0.1,fork,reuseaddr "TCP:$DB_ADDR" &
socat TCP-LISTEN:8001,fork,reuseaddr TCP:127.0.0.1:18000 &
socat TCP-LISTEN:8475,fork,reuseaddr TCP:127.0.0.1:8474 &
exec python -m opsdrill.toxiproxy --host 127.0.0.1 --port 8474 \
    --config /etc/opsdrill/toxiproxy.json "$@"
