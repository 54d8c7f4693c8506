#!/bin/sh
# Make sure a Docker engine answers, for the composed stack and its tests (tests/docker/).
#
#   scripts/docker-engine.sh            # install Debian's docker.io if missing, start dockerd
#                                       # if no engine answers, wait until `docker info` does
#
# Idempotent: an engine that already answers (this one, or any DOCKER_HOST, e.g. Podman's
# API service) is used as it is. dockerd gets overlay2 where the kernel can mount an overlay
# (layers shared, a container costs no copy) and vfs elsewhere (every layer and container a
# full copy: scripts/build-images.sh makes single-layer images for that case);
# OPSDRILL_DOCKER_STORAGE forces one. Its log goes to $OPSDRILL_DOCKERD_LOG.
# On failure: one line saying what is wrong, exit 3 (environment).
set -u

LOG=${OPSDRILL_DOCKERD_LOG:-/var/tmp/opsdrill-dockerd.log}
WAIT=${OPSDRILL_DOCKERD_WAIT:-60}

fail() {
    echo "docker-engine: $*" >&2
    exit 3
}

answers() { docker info >/dev/null 2>&1; }

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    if [ -n "${DOCKER_HOST:-}" ] && command -v docker >/dev/null 2>&1 && answers; then
        exit 0
    fi
    [ "$(id -u)" -eq 0 ] || fail "docker.io is not installed and installing it needs root: run 'sudo apt-get install docker.io'"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io >/dev/null 2>&1 ||
        fail "apt-get install docker.io failed: run it by hand to see why"
fi

# Compose: v2 as a CLI plugin, else Debian's docker-compose 1.29 (tests/docker/ uses either)
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1 &&
    [ "$(id -u)" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-compose >/dev/null 2>&1 ||
        fail "apt-get install docker-compose failed: run it by hand to see why"
fi

answers && exit 0
[ -n "${DOCKER_HOST:-}" ] && fail "no engine answers at DOCKER_HOST=$DOCKER_HOST: start it, or unset DOCKER_HOST"
[ "$(id -u)" -eq 0 ] || fail "no Docker engine answers and starting dockerd needs root: start it (sudo dockerd --storage-driver=vfs)"

overlay_works() { # a real overlay mount, as dockerd's overlay2 driver makes them
    d=$(mktemp -d /var/tmp/opsdrill-ovl.XXXXXX) || return 1
    mkdir "$d/l" "$d/u" "$d/w" "$d/m"
    ok=1
    if mount -t overlay overlay -o "lowerdir=$d/l,upperdir=$d/u,workdir=$d/w" "$d/m" 2>/dev/null; then
        ok=0
        umount "$d/m"
    fi
    rm -rf "$d"
    return $ok
}

if ! [ -S /var/run/docker.sock ] || ! pgrep -x dockerd >/dev/null 2>&1; then
    driver=${OPSDRILL_DOCKER_STORAGE:-}
    [ -n "$driver" ] || { overlay_works && driver=overlay2 || driver=vfs; }
    # setsid: the engine outlives the shell, the test session or the CI step that started it
    setsid dockerd --storage-driver="$driver" >>"$LOG" 2>&1 </dev/null &
fi
i=0
while [ "$i" -lt "$WAIT" ]; do
    answers && exit 0
    sleep 1
    i=$((i + 1))
done
fail "dockerd did not answer within ${WAIT} s: see $LOG"
