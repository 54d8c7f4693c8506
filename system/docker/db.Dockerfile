# PostgreSQL 15 with pg_stat_statements, from Debian's postgresql-15 (no registry needed).
# BASE_IMAGE: the locally made Debian base (scripts/build-images.sh), or debian:bookworm-slim
# where a registry is reachable.
ARG BASE_IMAGE=opsdrill-base:bookworm
FROM ${BASE_IMAGE}

ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 PGDATA=/var/lib/postgresql/data
RUN apt-get update -q \
    && apt-get install -y -q --no-install-recommends postgresql-15 postgresql-contrib \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p "$PGDATA" /run/postgresql \
    && chown -R postgres:postgres /var/lib/postgresql /run/postgresql
COPY db-entrypoint.sh /usr/local/bin/db-entrypoint.sh

USER postgres
EXPOSE 5432
# fast shutdown on `docker stop`: SIGTERM is PostgreSQL's smart shutdown, which waits for the
# app's pooled connections until the engine's timeout turns it into a SIGKILL
STOPSIGNAL SIGINT
HEALTHCHECK --interval=2s --timeout=5s --start-period=60s --retries=5 \
    CMD ["sh", "-c", "pg_isready -q -h 127.0.0.1 -U \"$POSTGRES_USER\" -d \"$POSTGRES_DB\""]
ENTRYPOINT ["/usr/local/bin/db-entrypoint.sh"]
CMD ["-c", "shared_preload_libraries=pg_stat_statements", "-c", "pg_stat_statements.track=all"]
