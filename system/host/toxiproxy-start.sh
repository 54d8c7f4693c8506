#!/bin/sh
# A staging host's Toxiproxy (ts-forecast-toxiproxy.service): opsdrill's embedded server, which
# listens on and connects to loopback only, with socat bridges where opsdrill reaches it from
# another machine: its API (8475), the API through the proxy `api` (8001) and PostgreSQL
# through the proxy `postgres` (15433, the app's own path: DATABASE_URL names 127.0.0.1:15432).
# A network drill's toxic then meets the app as it meets opsdrill's probes.
set -eu
socat TCP-LISTEN:8475,fork,reuseaddr TCP:127.0.0.1:8474 &
socat TCP-LISTEN:8001,fork,reuseaddr TCP:127.0.0.1:18000 &
socat TCP-LISTEN:15433,fork,reuseaddr TCP:127.0.0.1:15432 &
exec python3 -m opsdrill.toxiproxy --host 127.0.0.1 --port 8474 \
    --config /etc/ts-forecast/toxiproxy.json
