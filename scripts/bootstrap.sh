#!/usr/bin/env bash
# Set up a fresh machine for opsdrill: Debian packages, then a venv with the project.
# Idempotent and quick when nothing changed. Used by `make`, .ci/run and the quick start.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${OPSDRILL_VENV:-.venv}
CONSTRAINTS=${OPSDRILL_CONSTRAINTS:-constraints/cpu-torch.txt}
APT_PACKAGES=(
  postgresql-15 postgresql-client-15      # the embedded cluster (initdb, postgres, pg_dump)
  prometheus prometheus-alertmanager      # metrics and alerting, with promtool and amtool
  prometheus-node-exporter prometheus-postgres-exporter
  redis-server                            # the forecast cache (opsdrill.targets.local.redis_service)
  wrk                                     # load-generator baseline for bench/
  debootstrap                             # the Docker and host images' base (scripts/build-*)
)

say() { printf '[bootstrap] %s\n' "$*"; }

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# PostgreSQL 15 may come as bare server binaries rather than the Debian package.
if [[ " ${missing[*]} " == *" postgresql-15 "* ]] && [ -x /usr/lib/postgresql/15/bin/initdb ]; then
  missing=("${missing[@]/postgresql-15}"); missing=("${missing[@]/postgresql-client-15}")
  read -r -a missing <<<"${missing[*]}"
fi
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  if ! command -v apt-get >/dev/null; then
    say "not a Debian-like system: install ${missing[*]} yourself, then rerun"; exit 3
  fi
  say "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  # policy-rc.d keeps the packages' own services from starting: opsdrill runs its own.
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

stamp="$VENV/.opsdrill-installed"
want="$(cat pyproject.toml "$CONSTRAINTS" | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  say "venv $VENV up to date"
  exit 0
fi
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
say "installing the project into $VENV (torch pinned by $CONSTRAINTS)"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -c "$CONSTRAINTS" -e ".[dev,mlflow,ray]"
echo "$want" >"$stamp"
say "done"
