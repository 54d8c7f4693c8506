# The quick start: `make gameday` runs the main job, `make test` runs the tests.
# Each sets itself up first (Debian packages, .venv with the project) via scripts/bootstrap.sh.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup gameday gameday-compose test test-docker test-docker-quick test-host test-host-quick lint up down status bench clean

setup:
	bash scripts/bootstrap.sh

gameday: setup
	$(VENV)/bin/opsdrill gameday --plan-file gameday.yaml

# The same game day on the composed stack (system/compose.yaml): engine, images (built or
# reused), a project of its own with fresh secrets, first data, the game day with
# gameday-compose.yaml's plan, the project taken down with its volumes.
gameday-compose: setup
	VENV=$(VENV) bash scripts/compose-gameday.sh

# Three parts: the suite on the embedded stack, then the quick subsets on the composed stack
# (Docker) and on a systemd host over ssh. Their images are built (or reused) in the
# background while the first part runs; the suites' own build calls wait on the build lock and
# reuse what it made, and report a failed build themselves (log: build/prebuild.log). The
# game days (over Docker and over ssh), Docker's slow tests and the two-host fleet are left to
# make test-docker / test-host, which keeps CI under 30 minutes; tests/test_fleet.py is the
# fleet's quick variant.
test: setup
	mkdir -p build && (bash scripts/docker-engine.sh && bash scripts/build-images.sh && \
		bash scripts/build-host-image.sh) >build/prebuild.log 2>&1 &
	$(PY) -m pytest tests system/tests -m "not docker and not host" --durations=25
	$(PY) -m pytest tests/docker tests/host -m "(host and not fleet and not gameday) or (docker and not slow)" \
		--durations=10

# The composed stack on a Docker engine (Debian's docker.io) alone.
test-docker: setup
	$(PY) -m pytest tests/docker -m docker

# The CI variant: without the slow ones (read-only checks, training OOM kill, game day).
test-docker-quick: setup
	$(PY) -m pytest tests/docker -m "docker and not slow"

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

up: setup
	$(VENV)/bin/opsdrill up

down:
	$(VENV)/bin/opsdrill down

status:
	$(VENV)/bin/opsdrill status

bench: setup
	$(PY) bench/cold_start.py
	$(PY) bench/forecast_latency.py

clean: down
	rm -rf .opsdrill reports

# A systemd host driven over ssh (tests/host/): builds or reuses the host image (~3 min cold,
# longer on a loaded machine; seconds warm), boots it without --privileged, runs the suite.
test-host: setup
	$(PY) -m pytest tests/host -m host

# The quickest subset: the smoke, the guard, the SIGKILL drills and the rollback (not the OOM
# drill's training run, the stopped-app pair, the drills over ssh, the fleet or the game day;
# CI's subset in `test` keeps the slow ones); OPSDRILL_HOST_IMAGE skips the build.
test-host-quick: setup
	$(PY) -m pytest tests/host -m "host and not slow"
