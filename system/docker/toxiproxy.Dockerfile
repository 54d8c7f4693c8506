# opsdrill's embedded Toxiproxy (python -m opsdrill.toxiproxy) as a compose service.
# The embedded server listens on and connects to loopback only (the project's safety rule), so
# this container owns the network namespace the api container joins
# (network_mode: service:toxiproxy): app -> 127.0.0.1:15432 (proxy `postgres`) -> socat -> db,
# clients -> published :8001 -> socat -> 127.0.0.1:18000 (proxy `api`) -> 127.0.0.1:8000.
ARG APP_IMAGE=opsdrill-app:local
FROM ${APP_IMAGE}
COPY toxiproxy-entrypoint.sh /usr/local/bin/toxiproxy-entrypoint.sh
COPY toxiproxy.json /etc/opsdrill/toxiproxy.json
EXPOSE 8000 8001 8475
HEALTHCHECK --interval=2s --timeout=5s --start-period=30s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8474/version', timeout=4)"]
ENTRYPOINT ["/usr/local/bin/toxiproxy-entrypoint.sh"]
CMD []
