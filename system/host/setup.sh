#!/bin/sh
# Inside the host image's root (chroot, at build time): the runbook's layout and users.
#   /opt/ts-forecast            the app's home (NF_HOME): venv/, lib/, models/, logs/app/, conf/
#   /opt/ts-forecast/backups -> /var/backups/ts-forecast
set -eu
W=/tmp/host-setup
useradd --system --user-group --home-dir /opt/ts-forecast --shell /usr/sbin/nologin ts-forecast
useradd --create-home --user-group --shell /bin/bash --groups systemd-journal ops
passwd -l ops >/dev/null
install -d -o ts-forecast -g ts-forecast /opt/ts-forecast /opt/ts-forecast/models \
    /opt/ts-forecast/logs /opt/ts-forecast/logs/app /opt/ts-forecast/run /opt/ts-forecast/conf \
    /var/backups/ts-forecast
ln -s /var/backups/ts-forecast /opt/ts-forecast/backups
install -d -m 750 -g ts-forecast /etc/ts-forecast
python3 -m venv /opt/ts-forecast/venv
/opt/ts-forecast/venv/bin/pip install -q --no-index --no-compile --find-links "$W/wheelhouse" \
    -r "$W/requirements.txt"
find /opt/ts-forecast/venv -name '*.pyc' -delete
install -d /opt/ts-forecast/lib
cp -r "$W/nf_auto_runner" /opt/ts-forecast/lib/
install -m 644 "$W/ts-forecast.service" "$W/ts-forecast-firstboot.service" /etc/systemd/system/
# staging's Toxiproxy between the app and PostgreSQL (opsdrill's embedded server: stdlib only)
install -d /opt/opsdrill-toxiproxy
cp -r "$W/opsdrill-toxiproxy/opsdrill" /opt/opsdrill-toxiproxy/
install -m 644 "$W/ts-forecast-toxiproxy.service" /etc/systemd/system/
install -d /etc/systemd/system/ts-forecast.service.d
install -m 644 "$W/toxiproxy-dropin.conf" /etc/systemd/system/ts-forecast.service.d/toxiproxy.conf
install -m 755 "$W/toxiproxy-start.sh" /usr/local/sbin/ts-forecast-toxiproxy
install -m 644 "$W/toxiproxy.json" /etc/ts-forecast/toxiproxy.json
install -m 755 "$W/ts-forecast-ops" /usr/local/bin/ts-forecast-ops
install -m 755 "$W/ts-forecast-app" /usr/local/bin/ts-forecast-app
install -m 755 "$W/firstboot.sh" /usr/local/sbin/opsdrill-firstboot
install -m 440 "$W/sudoers" /etc/sudoers.d/ts-forecast
visudo -cq -f /etc/sudoers.d/ts-forecast
install -m 644 "$W/cron" /etc/cron.d/ts-forecast
install -m 644 "$W/sshd.conf" /etc/ssh/sshd_config.d/opsdrill.conf
rm -f /etc/ssh/ssh_host_*  # every host gets its own key from its seed at first boot
# PostgreSQL: reachable from the published port with a password, pg_stat_statements loaded
PG=/etc/postgresql/15/main
echo "listen_addresses = '*'" >>$PG/postgresql.conf
echo "shared_preload_libraries = 'pg_stat_statements'" >>$PG/postgresql.conf
echo "pg_stat_statements.track = all" >>$PG/postgresql.conf
echo "host all all 0.0.0.0/0 scram-sha-256" >>$PG/pg_hba.conf
systemctl enable ts-forecast.service ts-forecast-firstboot.service ts-forecast-toxiproxy.service \
    ssh.service >/dev/null 2>&1
# a container has no consoles or udev to wait for
systemctl mask getty@tty1.service console-getty.service systemd-udevd.service \
    systemd-udev-trigger.service systemd-firstboot.service \
    >/dev/null 2>&1 || true
# Debian's Prometheus and Redis units sandbox with namespaces, which an unprivileged container
# cannot create (no CAP_SYS_ADMIN): a drop-in lifts the sandbox in this image only
for unit in prometheus redis-server; do
    install -d /etc/systemd/system/$unit.service.d
    install -m 644 "$W/sandbox.conf" /etc/systemd/system/$unit.service.d/container.conf
done
# Redis, the forecast cache: firstboot writes this host's password and address into the
# file the stock config includes last (empty until then: loopback, no password)
# A cache is bounded (§6.2.2's check): LRU eviction under maxmemory, as the embedded stack's
install -m 640 -o redis -g redis /dev/null /etc/redis/opsdrill.conf
printf 'maxmemory 64mb\nmaxmemory-policy allkeys-lru\ninclude /etc/redis/opsdrill.conf\n' \
    >>/etc/redis/redis.conf
install -d /etc/systemd/system.conf.d
install -m 644 "$W/accounting.conf" /etc/systemd/system.conf.d/opsdrill.conf
# Prometheus and Alertmanager: the production files (system/prometheus), this host's targets.
# A staging host for drills runs the rules at drill scale, as the embedded and composed stacks
# do (every `for:` and window / 60, scraped and evaluated every second: drill-rules/, made by
# `python -m opsdrill.monitoring.compose_rules`), with shortened.json beside them so the checks
# restore the production durations and the drills report an alert's production-scale MTTD.
sed -e 's/"api:8000"/"127.0.0.1:8000"/; s/"postgres-exporter:9187"/"127.0.0.1:9187"/' \
    -e 's/"node-exporter:9100"/"127.0.0.1:9100"/; s/"alertmanager:9093"/"127.0.0.1:9093"/' \
    -e 's/scrape_interval: 15s/scrape_interval: 1s/; s/scrape_timeout: 10s/scrape_timeout: 1s/' \
    -e 's/evaluation_interval: 15s/evaluation_interval: 1s/' \
    "$W/prometheus/prometheus.yml" >/etc/prometheus/prometheus.yml
install -m 644 "$W/drill-rules/alerts.yml" "$W/drill-rules/slo_rules.yml" \
    "$W/drill-rules/shortened.json" /etc/prometheus/
install -m 644 "$W/prometheus/alertmanager.yml" /etc/prometheus/alertmanager.yml
# the exporter reads PostgreSQL as the prometheus role (peer auth; firstboot creates it)
echo "DATA_SOURCE_NAME='user=prometheus host=/run/postgresql dbname=postgres sslmode=disable'" \
    >/etc/default/prometheus-postgres-exporter
systemctl enable prometheus.service prometheus-postgres-exporter.service \
    prometheus-alertmanager.service prometheus-node-exporter.service redis-server.service \
    >/dev/null 2>&1
echo ts-forecast-host >/etc/hostname
