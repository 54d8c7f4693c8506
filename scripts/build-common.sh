# Sourced by the image builders (build-images.sh, build-host-image.sh) after setting BUILDER
# (their name, for messages) and OUT_NAME (their directory under build/): the checkout's
# root, the log, the build lock and the helpers both use.
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/build/$OUT_NAME
mkdir -p "$OUT"
LOG=$OUT/build.log
# One build at a time per checkout: a second caller (the test session after a build started
# early in the background) waits here, then finds the images made and reuses them.
exec 9>"$OUT/.lock"
flock 9
: >"$LOG"

fail() {
    echo "$BUILDER: $*" >&2
    exit 3
}
say() { echo "$BUILDER: $*" >&2; }
hash12() { sha256sum | cut -c1-12; }
have() { docker image inspect "$1" >/dev/null 2>&1; }

scripts/docker-engine.sh
