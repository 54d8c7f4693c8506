# The forecasting API (nf_auto_runner); the same image is the stack's ops CLI
# (`python -m nf_auto_runner.ops`), opsdrill's embedded Toxiproxy and the alert sink.
# Built by scripts/build-images.sh from a staged context: wheelhouse/ holds every Python
# dependency, built on the host with the project's pip configuration (CPU torch), so the build
# needs neither PyPI nor PyTorch's index; src/ holds the project's tracked files.
ARG BASE_IMAGE=opsdrill-base:bookworm
FROM ${BASE_IMAGE}

ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 NF_HOME=/var/lib/nf_auto_runner \
    PATH=/opt/venv/bin:$PATH
# Three layers, the wheelhouse and the source bind-mounted rather than copied in: on the vfs
# storage driver every layer is a full copy of the image, so each one costs tens of seconds.
# uid 10001: compose.yaml mounts the size-limited tmpfs volumes owned by it
# socat: the toxiproxy service bridges the compose network to the loopback-only embedded server
RUN apt-get update -q \
    && apt-get install -y -q --no-install-recommends python3 python3-venv socat \
       postgresql-client-15 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv \
    && useradd --system --uid 10001 --user-group --create-home --home-dir "$NF_HOME" nf \
    && mkdir -p "$NF_HOME/models" "$NF_HOME/logs/app" "$NF_HOME/backups" "$NF_HOME/conf" \
    && chown -R nf:nf "$NF_HOME"
RUN --mount=type=bind,target=/ctx \
    pip install -q --no-index --find-links /ctx/wheelhouse -r /ctx/requirements.txt
# the project, and the toxiproxy service's entrypoint and proxies (the same image runs it)
RUN --mount=type=bind,target=/ctx,rw \
    pip install -q --no-index --no-deps --no-build-isolation /ctx/src \
    && install -D -m 755 /ctx/toxiproxy/toxiproxy-entrypoint.sh /usr/local/bin/ \
    && install -D -m 644 /ctx/toxiproxy/toxiproxy.json /etc/opsdrill/toxiproxy.json

USER nf
WORKDIR /var/lib/nf_auto_runner
EXPOSE 8000 8001 8475
HEALTHCHECK --interval=2s --timeout=5s --start-period=60s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
CMD ["python", "-m", "nf_auto_runner.app.main", "--host", "0.0.0.0", "--port", "8000"]
