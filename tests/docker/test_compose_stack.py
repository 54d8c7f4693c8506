"""The composed stack driven through the Docker target: discovery, read-only checks, real
SIGKILLs of the database's and the app's container seen by /health, and recovery."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import psycopg
import pytest

from opsdrill.errors import MissingDependency, UsageError
from opsdrill.exitcodes import ExitCode, exit_code_for
from opsdrill.plugin.waiting import first
from opsdrill.targets import Target, parse_spec
from tests.docker.conftest import ROOT, ComposedStack, health_status

pytestmark = pytest.mark.docker


def test_target_finds_the_stack_by_compose_labels(docker_target: Target) -> None:
    ep = docker_target.endpoints
    assert {"db", "api", "proxy"} <= set(docker_target.services)
    assert ep.api_url.startswith("http://127.0.0.1:"), "the api is published on loopback only"
    assert health_status(ep.api_url) == 200
    forecast = httpx.get(f"{ep.api_url}/forecast/airpassengers", timeout=30)
    assert forecast.status_code == 200, forecast.text
    with psycopg.connect(ep.dsn, connect_timeout=5) as conn:
        ext = conn.execute("SELECT 1 FROM pg_stat_statements LIMIT 1").fetchall()
    assert ext is not None
    assert docker_target.host_spec.startswith("docker://")
    assert "password" not in repr(ep).lower() and (ep.api_key or "x") not in repr(ep)


def test_proxy_hops_are_toxiproxy_in_front_of_the_api(docker_target: Target) -> None:
    with docker_target.ensure_proxy() as hops:
        assert httpx.get(f"{hops.toxiproxy_url}/proxies", timeout=5).json().keys() >= {
            "postgres", "api"
        }  # fmt: skip
        assert health_status(hops.api_url) == 200, "the api through its proxy"
        # the app's DATABASE_URL is 127.0.0.1:15432 (Toxiproxy's `postgres`) in its network
        # namespace; the hop gives this machine the same proxy at a published port
        assert "127.0.0.1:15432" in docker_target.container_env("api")["DATABASE_URL"]
        with psycopg.connect(hops.app_dsn, connect_timeout=10) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        toxic = {"name": "opsdrill-hop-reset", "type": "reset_peer", "stream": "downstream",
                 "toxicity": 1.0, "attributes": {"timeout": 0}}  # fmt: skip
        toxics = f"{hops.toxiproxy_url}/proxies/postgres/toxics"
        assert httpx.post(toxics, json=toxic, timeout=5).status_code in (200, 201)
        try:
            with pytest.raises(psycopg.OperationalError):
                psycopg.connect(hops.app_dsn, connect_timeout=5).close()
        finally:
            httpx.delete(f"{toxics}/{toxic['name']}", timeout=5)


def test_the_exporter_holds_no_superuser_session_on_the_app_database(
    docker_target: Target,
) -> None:
    """§5.3.2's restore runs as the app's role, which may not terminate a superuser's session:
    an exporter connected as `postgres` to the app's database made the drop fail (compose's
    game day, db-recovery). The exporter reads as a pg_monitor role from `postgres` instead."""

    def sessions() -> list[tuple[str, str, bool]] | None:
        with psycopg.connect(docker_target.admin_dsn, autocommit=True, connect_timeout=5) as c:
            rows = c.execute(
                "SELECT a.usename, a.datname, r.rolsuper FROM pg_stat_activity a "
                "JOIN pg_roles r ON r.oid = a.usesysid WHERE a.pid <> pg_backend_pid() "
                "AND a.backend_type = 'client backend'"
            ).fetchall()
        return rows if any(user == "prometheus" for user, _, _ in rows) else None

    rows = first(sessions, 60, "the postgres exporter connected (a `prometheus` session)")
    superuser_on_app_db = [r for r in rows if r[2] and r[1] == "ts_forecast_system"]
    assert superuser_on_app_db == [], superuser_on_app_db
    assert all(not su for user, _, su in rows if user == "prometheus"), rows


# In the quick subset: about 90 s on the shared 2-core machine, on the session's stack. It runs
# before this file's SIGKILLs, whose real outages would be the last hour's error rows.
def test_readonly_checks_against_the_composed_stack(composed: ComposedStack) -> None:
    """Every read-only check passes on the Docker target, or skips saying what it lacks."""
    argv = ["pytest", "checks", "--target", composed.spec, "-m", "readonly and not slow", "-q",
            "-rA"]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", *argv, "-p", "no:cacheprovider"],
        cwd=ROOT,
        env={**os.environ},
        capture_output=True,
        text=True,
        timeout=900,
    )
    summary = [ln for ln in done.stdout.splitlines() if ln.startswith(("PASSED", "FAILED",
               "SKIPPED", "ERROR", "XFAIL"))]  # fmt: skip
    print("\n" + "\n".join(summary) + "\n" + done.stdout.strip().splitlines()[-1])
    assert done.returncode == 0, (
        f"read-only checks failed on the composed stack:\n{done.stdout[-3000:]}"
    )
    assert sum(ln.startswith("PASSED") for ln in summary) >= 40, "most checks should run here"


def _kill_and_recover(
    target: Target, name: str, down_means: set[int | None]
) -> tuple[float, float]:
    """SIGKILL the service's container, see /health leave 200, start it, see 200 again."""
    url = target.endpoints.api_url
    service = target.service(name)
    assert health_status(url) == 200, "steady state before the fault"
    pid_before = service.pid()
    t0 = time.monotonic()
    service.kill()
    first(lambda: health_status(url) in down_means, 60, f"/health noticing {name} killed")
    detected = time.monotonic() - t0
    assert not service.is_running(), f"{name}'s container survived SIGKILL of its main process"
    service.start(timeout=180)
    first(lambda: health_status(url) == 200, 180, f"/health 200 after restarting {name}")
    recovered = time.monotonic() - t0
    assert service.pid() not in (None, pid_before)
    return detected, recovered


def test_db_sigkill_is_seen_by_health_and_recovered(docker_target: Target) -> None:
    mttd, mttr = _kill_and_recover(docker_target, "db", {503, 500, None})
    print(f"\n[db SIGKILL] MTTD {mttd:.1f} s  MTTR {mttr:.1f} s")


def test_app_sigkill_is_seen_by_health_and_recovered(docker_target: Target) -> None:
    mttd, mttr = _kill_and_recover(docker_target, "api", {None})
    print(f"\n[app SIGKILL] MTTD {mttd:.1f} s  MTTR {mttr:.1f} s")


def test_paused_api_stops_answering_until_unpaused(docker_target: Target) -> None:
    """pause freezes the container's processes: alive, answering nothing; unpause resumes."""
    url = docker_target.endpoints.api_url
    api = docker_target.service("api")
    assert health_status(url) == 200, "steady state before the pause"
    pid = api.pid()
    api.pause()  # type: ignore[attr-defined]
    try:
        assert health_status(url) is None, "a frozen api must not answer /health"
        assert api.is_running() and not api.healthy() and api.pid() == pid
    finally:
        api.unpause()  # type: ignore[attr-defined]
    first(lambda: health_status(url) == 200, 60, "/health 200 after unpause")


@pytest.mark.parametrize(
    ("spec", "error", "words"),
    [
        ("docker:", UsageError, "needs a Compose project name"),
        ("compose:proj,nosuch=X", UsageError, "bad option"),
        ("docker:opsdrill-no-such-project", UsageError, "no containers of Compose project"),
    ],
)
def test_bad_specs_are_one_sentence(
    composed: ComposedStack, spec: str, error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words) as info:
        parse_spec(spec)
    assert "\n" not in str(info.value)
    assert exit_code_for(info.value) == ExitCode.USAGE


def test_no_engine_is_an_environment_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///var/run/opsdrill-no-such-engine.sock")
    with pytest.raises(MissingDependency, match="no Docker engine answers") as info:
        parse_spec("docker:anything")
    assert exit_code_for(info.value) == ExitCode.ENVIRONMENT
