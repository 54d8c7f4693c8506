# Prometheus, Alertmanager and the node and PostgreSQL exporters from Debian's packages (no
# registry needed): one image, each compose service runs its own binary.
# BASE_IMAGE: the locally made Debian base (scripts/build-images.sh), or debian:bookworm-slim
# where a registry is reachable.
ARG BASE_IMAGE=opsdrill-base:bookworm
FROM ${BASE_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
RUN apt-get update -q \
    && apt-get install -y -q --no-install-recommends prometheus prometheus-alertmanager \
       prometheus-node-exporter prometheus-postgres-exporter wget ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /prometheus /alertmanager && chown nobody:nogroup /prometheus /alertmanager
USER nobody
