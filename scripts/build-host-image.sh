#!/bin/sh
# Build the "host" image: a Debian bookworm machine with systemd as PID 1, openssh-server,
# PostgreSQL 15 (postgresql@15-main), the app as ts-forecast.service
# (system/systemd/ts-forecast.service), Prometheus, Alertmanager and the exporters as their
# Debian units, and the runbook's cron schedule (system/host/). tests/host/ starts it.
#
#   scripts/build-host-image.sh        # prints OPSDRILL_HOST_IMAGE=opsdrill-host:HASH
#
# One layer, no Dockerfile: debootstrap --include=... into a directory, the app's venv from a
# local wheelhouse in a chroot, then `docker import` (on the vfs driver every layer is a full
# copy). Tagged by a hash of its inputs, so a second run only prints the tag.
# Environment: OPSDRILL_DEBIAN_MIRROR, OPSDRILL_PIP (as scripts/build-images.sh),
# OPSDRILL_HOST_IMAGE_KEEP=1 (keep earlier host images).
# Exit 3 with one line when the environment is missing a piece.
set -eu
BUILDER=build-host-image OUT_NAME=host
. "$(dirname "$0")/build-common.sh"

PACKAGES=systemd,systemd-sysv,dbus,openssh-server,sudo,cron,procps,iproute2,ca-certificates,socat
PACKAGES=$PACKAGES,python3,python3-venv,postgresql-15,postgresql-client-15
PACKAGES=$PACKAGES,prometheus,prometheus-alertmanager,prometheus-node-exporter
PACKAGES=$PACKAGES,prometheus-postgres-exporter,redis-server
REQUIREMENTS='fastapi>=0.110 uvicorn>=0.29 psycopg[binary]>=3.1 psycopg-pool>=3.2
prometheus-client>=0.20 numpy>=1.26 pandas>=2.1 torch>=2.2 neuralforecast>=3.3
safetensors>=0.4 pyyaml>=6 redis>=5.0 async-timeout>=4.0.3'

MIRROR=${OPSDRILL_DEBIAN_MIRROR:-$(grep -rhoE '(URIs:|deb) +https?://[^ ]+/debian/?( |$)' \
    /etc/apt/sources.list /etc/apt/sources.list.d 2>/dev/null | head -1 |
    sed -E 's/^(URIs:|deb) +//; s/ *$//')}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

INPUTS=$( (
    echo "$PACKAGES $MIRROR $REQUIREMENTS"
    cat scripts/build-host-image.sh system/systemd/ts-forecast.service system/host/*
    cat system/prometheus/*.yml opsdrill/__init__.py opsdrill/errors.py
    cat system/docker/monitoring/rules/*.yml system/docker/monitoring/shortened.json
    find opsdrill/toxiproxy -name '*.py' | LC_ALL=C sort | xargs cat
    find system/nf_auto_runner -type f -not -name '*.pyc' | LC_ALL=C sort | xargs cat
) | hash12)
TAG=opsdrill-host:$INPUTS
if docker image inspect "$TAG" >/dev/null 2>&1; then
    say "$TAG reused"
    echo "OPSDRILL_HOST_IMAGE=$TAG"
    exit 0
fi
command -v debootstrap >/dev/null || fail "debootstrap is missing: apt-get install debootstrap"

# the wheelhouse: only the app's own dependencies, with the project's pip configuration
PIP=${OPSDRILL_PIP:-}
[ -n "$PIP" ] || for p in "$ROOT/.venv/bin/pip"; do
    [ -x "$p" ] && PIP=$p && break
done
[ -n "$PIP" ] || PIP=$(command -v pip3 || true)
[ -n "$PIP" ] || fail "no pip to build the wheelhouse with: set OPSDRILL_PIP"
printf '%s\n' $REQUIREMENTS >"$OUT/requirements.txt"
t0=$(date +%s)
if ! cmp -s "$OUT/requirements.txt" "$OUT/wheelhouse/.requirements"; then
    "$PIP" wheel -q -c constraints/cpu-torch.txt -r "$OUT/requirements.txt" \
        -w "$OUT/wheelhouse" >>"$LOG" 2>&1 || fail "pip wheel failed: see $LOG"
    cp "$OUT/requirements.txt" "$OUT/wheelhouse/.requirements"
    say "wheelhouse built in $(($(date +%s) - t0)) s"
fi

t0=$(date +%s)
rootfs=$(mktemp -d /var/tmp/opsdrill-host-rootfs.XXXXXX)
trap 'umount "$rootfs/proc" 2>/dev/null || true; rm -rf "$rootfs"' EXIT
chmod 755 "$rootfs"
debootstrap --variant=minbase --include="$PACKAGES" bookworm "$rootfs" "$MIRROR" >>"$LOG" 2>&1 ||
    fail "debootstrap from $MIRROR failed: see $LOG"
say "debootstrap done in $(($(date +%s) - t0)) s"

W=$rootfs/tmp/host-setup
mkdir -p "$W"
cp -r "$OUT/wheelhouse" "$OUT/requirements.txt" system/nf_auto_runner system/host/* \
    system/systemd/ts-forecast.service "$W/"
mkdir "$W/prometheus" && cp system/prometheus/*.yml "$W/prometheus/"
mkdir "$W/drill-rules" && cp system/docker/monitoring/rules/*.yml \
    system/docker/monitoring/shortened.json "$W/drill-rules/"
mkdir -p "$W/opsdrill-toxiproxy/opsdrill/toxiproxy"
cp opsdrill/__init__.py opsdrill/errors.py "$W/opsdrill-toxiproxy/opsdrill/"
cp opsdrill/toxiproxy/*.py "$W/opsdrill-toxiproxy/opsdrill/toxiproxy/"
find "$W/nf_auto_runner" -name __pycache__ -prune -exec rm -rf {} +
mount -t proc proc "$rootfs/proc"
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 chroot "$rootfs" /bin/sh /tmp/host-setup/setup.sh >>"$LOG" 2>&1 ||
    fail "setting up the host's root failed: see $LOG"
umount "$rootfs/proc"
rm -rf "$W" "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | docker import -c 'CMD ["/sbin/init"]' \
    -c 'LABEL org.opsdrill.image=host' - "$TAG" >>"$LOG" || fail "docker import failed: see $LOG"
say "$TAG made in $(($(date +%s) - t0)) s"
# an earlier input's host image goes: on vfs every image is a full copy on disk
# (OPSDRILL_HOST_IMAGE_KEEP=1 keeps them: another checkout on this engine may still use one)
[ -n "${OPSDRILL_HOST_IMAGE_KEEP:-}" ] ||
    docker images --format '{{.Repository}}:{{.Tag}}' opsdrill-host | grep -vx "$TAG" |
    xargs -r docker rmi >/dev/null 2>&1 || true
echo "OPSDRILL_HOST_IMAGE=$TAG"
