#!/bin/sh
# Make sure a Docker engine answers, for the composed stack and its tests (tests/docker/).
#
#   scripts/docker-engine.sh            # install Debian's docker.io if missing, start dockerd
#                                       # if no engine answers, wait until `docker info` does
#
# Idempotent: an engine that already answers (this one, or any DOCKER_HOST, e.g. Podman's
# API service) is used as it is. dockerd is started with the vfs storage driver because
# overlay is not available on every CI machine; its log goes to $OPSDRILL_DOCKERD_LOG.
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

answers && exit 0
[ -n "${DOCKER_HOST:-}" ] && fail "no engine answers at DOCKER_HOST=$DOCKER_HOST: start it, or unset DOCKER_HOST"
[ "$(id -u)" -eq 0 ] || fail "no Docker engine answers and starting dockerd needs root: start it (sudo dockerd --storage-driver=vfs)"

if ! [ -S /var/run/docker.sock ] || ! pgrep -x dockerd >/dev/null 2>&1; then
    # setsid: the engine outlives the shell, the test session or the CI step that started it
    setsid dockerd --storage-driver=vfs >>"$LOG" 2>&1 </dev/null &
fi
i=0
while [ "$i" -lt "$WAIT" ]; do
    answers && exit 0
    sleep 1
    i=$((i + 1))
done
fail "dockerd did not answer within ${WAIT} s: see $LOG"
