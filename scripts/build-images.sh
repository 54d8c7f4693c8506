#!/bin/sh
# Build the composed stack's images (system/compose.yaml) from what is reachable, reusing any
# that already exist: every image is tagged by a hash of its inputs, so a second run builds
# nothing, and a changed source file rebuilds the app image only.
#
#   scripts/build-images.sh            # prints OPSDRILL_*_IMAGE=... lines for compose
#
# No container registry is needed: the base image is Debian bookworm made with debootstrap
# from the configured Debian mirror and `docker import`ed; PostgreSQL and Python come from
# Debian packages; the Python dependencies from a wheelhouse built on this host with the
# project's own pip configuration (so torch is the CPU build). Where a registry is reachable,
# OPSDRILL_BASE_IMAGE=debian:bookworm-slim uses the upstream base instead.
#
# Environment: OPSDRILL_BASE_IMAGE, OPSDRILL_DEBIAN_MIRROR (default: the first deb.debian.org-
# style URI in /etc/apt/sources.list*), OPSDRILL_PIP (pip used for the wheelhouse).
# Exit 3 with one line when the environment is missing a piece (engine, debootstrap, pip).
set -eu
BUILDER=build-images OUT_NAME=docker
. "$(dirname "$0")/build-common.sh"

# 1. base image ---------------------------------------------------------------------------
BASE=${OPSDRILL_BASE_IMAGE:-}
if [ -z "$BASE" ]; then
    MIRROR=${OPSDRILL_DEBIAN_MIRROR:-$(grep -rhoE '(URIs:|deb) +https?://[^ ]+/debian/?( |$)' \
        /etc/apt/sources.list /etc/apt/sources.list.d 2>/dev/null | head -1 |
        sed -E 's/^(URIs:|deb) +//; s/ *$//')}
    MIRROR=${MIRROR:-http://deb.debian.org/debian}
    BASE=opsdrill-base:bookworm-$(printf 'bookworm minbase %s 2\n' "$MIRROR" | hash12)
    if ! have "$BASE"; then
        command -v debootstrap >/dev/null || fail "debootstrap is missing: apt-get install debootstrap"
        t0=$(date +%s)
        rootfs=$(mktemp -d /var/tmp/opsdrill-rootfs.XXXXXX)
        chmod 755 "$rootfs" # it becomes the image's /, which every user must traverse
        debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >>"$LOG" 2>&1 ||
            { rm -rf "$rootfs"; fail "debootstrap from $MIRROR failed: see $LOG"; }
        tar -C "$rootfs" -c . | docker import -c 'CMD ["bash"]' \
            -c 'LABEL org.opsdrill.image=base' - "$BASE" >>"$LOG"
        rm -rf "$rootfs"
        say "base $BASE made in $(($(date +%s) - t0)) s"
    fi
fi
BASE_ID=$(docker image inspect -f '{{.Id}}' "$BASE" 2>/dev/null) ||
    fail "base image $BASE is not available: pull it, or unset OPSDRILL_BASE_IMAGE"

# BuildKit: the legacy builder commits a container per instruction, which on the vfs storage
# driver copies the whole image each time (minutes per ENV/LABEL line). Docker 28's CLI
# needs buildx for BuildKit; Debian's docker.io CLI (/usr/bin/docker, 20.10) has it built in.
if docker buildx version >/dev/null 2>&1; then
    BUILD="docker buildx build --load"
elif [ -x /usr/bin/docker ] && /usr/bin/docker version -f '{{.Client.Version}}' 2>/dev/null |
    grep -qE '^(19|2[0-4])\.'; then
    BUILD="env DOCKER_BUILDKIT=1 /usr/bin/docker build"
else
    BUILD="docker build"
fi

build() { # name dockerfile context tag [build-arg...]
    name=$1 dockerfile=$2 context=$3 tag=$4
    shift 4
    if have "$tag"; then
        say "$name $tag reused"
    else
        t0=$(date +%s)
        set -- "$@" --build-arg "BASE_IMAGE=$BASE"
        $BUILD -q -f "$dockerfile" --label "org.opsdrill.image=$name" "$@" -t "$tag" \
            "$context" >>"$LOG" 2>&1 || fail "building the $name image failed: see $LOG"
        say "$name $tag built in $(($(date +%s) - t0)) s"
    fi
    docker tag "$tag" "opsdrill-$name:local"
}

# 2. the wheelhouse and the app's build context --------------------------------------------
PIP=${OPSDRILL_PIP:-}
[ -n "$PIP" ] || for p in "$ROOT/.venv/bin/pip"; do
    [ -x "$p" ] && PIP=$p && break
done
[ -n "$PIP" ] || PIP=$(command -v pip3 || true)
[ -n "$PIP" ] || fail "no pip to build the wheelhouse with: set OPSDRILL_PIP"
CTX=$OUT/app
mkdir -p "$CTX/wheelhouse"
PYTHON="$(dirname "$PIP")/python"
[ -x "$PYTHON" ] || PYTHON=python3
"$PYTHON" -c '
import sys, tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
print("\n".join(["setuptools>=68", "wheel", *deps]))' >"$CTX/requirements.txt.new"
if ! cmp -s "$CTX/requirements.txt.new" "$CTX/wheelhouse/.requirements"; then
    t0=$(date +%s)
    "$PIP" wheel -q -c constraints/cpu-torch.txt -r "$CTX/requirements.txt.new" \
        -w "$CTX/wheelhouse" >>"$LOG" 2>&1 || fail "pip wheel failed: see $LOG"
    cp "$CTX/requirements.txt.new" "$CTX/wheelhouse/.requirements"
    say "wheelhouse built in $(($(date +%s) - t0)) s"
fi
# pip resolved the markers for this host's Python; add what the image's Python (Debian
# bookworm's python3, OPSDRILL_IMAGE_PYTHON) needs besides (redis's async-timeout < 3.11.3)
IMAGE_PYTHON=${OPSDRILL_IMAGE_PYTHON:-3.11.2}
for _ in 1 2 3; do
    gaps=$("$(dirname "$PIP")/python" scripts/wheelhouse_gaps.py "$CTX/wheelhouse" "$IMAGE_PYTHON") ||
        fail "reading the wheelhouse's requirements failed (needs the packaging module)"
    [ -n "$gaps" ] || break
    # shellcheck disable=SC2086 # one requirement a line, none with spaces
    "$PIP" wheel -q -c constraints/cpu-torch.txt $gaps -w "$CTX/wheelhouse" >>"$LOG" 2>&1 ||
        fail "pip wheel of the image Python's extra requirements failed: see $LOG"
    say "wheelhouse: added for Python $IMAGE_PYTHON: $(echo $gaps)"
done
mv "$CTX/requirements.txt.new" "$CTX/requirements.txt"
rm -rf "$CTX/src"
mkdir -p "$CTX/src"
git ls-files -co --exclude-standard -- pyproject.toml README.md opsdrill system \
    ':!system/docker' ':!system/compose.yaml' | tar -cf - -T - | tar -C "$CTX/src" -xf -
rm -rf "$CTX/toxiproxy"
mkdir -p "$CTX/toxiproxy"
cp system/docker/toxiproxy-entrypoint.sh system/docker/toxiproxy.json "$CTX/toxiproxy/"
SRC_HASH=$(cd "$CTX" && find src toxiproxy -type f | LC_ALL=C sort | xargs sha256sum | hash12)
DEPS_HASH=$( (cat "$CTX/requirements.txt"; ls -l "$CTX/wheelhouse" | awk '{print $5, $9}') | hash12)

D=system/docker
DB_TAG=opsdrill-db:$(cat $D/db.Dockerfile $D/db-entrypoint.sh | { cat; echo "$BASE_ID"; } | hash12)
APP_TAG=opsdrill-app:$( (cat $D/app.Dockerfile; echo "$BASE_ID $DEPS_HASH $SRC_HASH") | hash12)
MON_TAG=opsdrill-monitoring:$( (cat $D/monitoring.Dockerfile; echo "$BASE_ID") | hash12)
build db $D/db.Dockerfile $D "$DB_TAG"
build monitoring $D/monitoring.Dockerfile $D "$MON_TAG"
build app $D/app.Dockerfile "$CTX" "$APP_TAG"

# older hashes of our images (an earlier source's app image) go: on vfs every image is a full
# copy on disk; then whatever of ours no tag names any more
for pair in "db $DB_TAG" "monitoring $MON_TAG" "app $APP_TAG"; do
    set -- $pair
    docker images --format '{{.Repository}}:{{.Tag}}' "opsdrill-$1" |
        grep -vx -e "$2" -e "opsdrill-$1:local" | xargs -r docker rmi >/dev/null 2>&1 || true
done
docker image prune -f --filter label=org.opsdrill.image >/dev/null 2>&1 || true
echo "OPSDRILL_BASE_IMAGE=$BASE"
echo "OPSDRILL_DB_IMAGE=$DB_TAG"
echo "OPSDRILL_MONITORING_IMAGE=$MON_TAG"
echo "OPSDRILL_APP_IMAGE=$APP_TAG"
