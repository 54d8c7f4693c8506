#!/usr/bin/env bash
# The game day on the composed stack, in one command (`make gameday-compose`): start a Docker
# engine if none answers, build the images that are missing (reusing the rest), compose
# system/compose.yaml under a project of its own with fresh secrets, give it its first data
# (`opsdrill up --target docker:P`), run `opsdrill gameday` against it with the compose plan
# (gameday-compose.yaml), and take the project down with its volumes whatever happened.
# Exit code: the game day's (0 PASSED, 1 FAILED, 4 INCOMPLETE), 3 when the engine or images
# cannot be had. OPSDRILL_COMPOSE_PROJECT names the project (default opsdrill-gameday);
# extra arguments go to `opsdrill gameday` (e.g. --suite chaos).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PROJECT=${OPSDRILL_COMPOSE_PROJECT:-opsdrill-gameday}

if docker compose version >/dev/null 2>&1; then compose=(docker compose)
elif command -v docker-compose >/dev/null; then compose=(docker-compose)
else echo "compose-gameday: neither 'docker compose' nor docker-compose is installed: apt-get install docker-compose" >&2; exit 3
fi

bash scripts/docker-engine.sh
mkdir -p build/docker
bash scripts/build-images.sh >build/docker/images.env
set -a
. build/docker/images.env
POSTGRES_PASSWORD=$("$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(16))')
NF_DB_PASSWORD=$("$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(16))')
NF_API_KEY=$("$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(16))')
set +a

down() { "${compose[@]}" -p "$PROJECT" -f system/compose.yaml down -v --remove-orphans >/dev/null 2>&1 || true; }
down  # a project left by a killed run
trap down EXIT
"${compose[@]}" -p "$PROJECT" -f system/compose.yaml up -d
"$VENV/bin/opsdrill" up --target "docker:$PROJECT"
set +e
"$VENV/bin/opsdrill" gameday --target "docker:$PROJECT" --plan-file gameday-compose.yaml "$@"
code=$?
set -e
exit $code
