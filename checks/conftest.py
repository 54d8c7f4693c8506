"""Fixtures for the runbook checks: read-only SQL, the stack's paths, the ops CLI, /metrics.

Read-only checks read the database only inside READ ONLY transactions (`read`), so a check
cannot write even by mistake. Checks that change what other checks see for a moment (the
maintenance-mode round trip's 503s, the archive's and retention's planted rows) are marked
`exclusive`: under `pytest -n` they take a lock that every other check holds shared.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from opsdrill.plugin.target_locks import state_lock
from opsdrill.probes.metrics_text import AppMetrics, parse
from opsdrill.targets.base import Target
from opsdrill.targets.model import ExecResult

Read = Callable[..., list[dict[str, Any]]]

#: extra paths for the disk check (`:`-separated), e.g. a data disk the target file omits
DISK_PATHS_ENV = "OPSDRILL_DISK_PATHS"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "exclusive: changes what other checks see (the API down, planted rows); "
        "runs while no other check does",
    )


@pytest.fixture(autouse=True)
def _exclusion(request: pytest.FixtureRequest, target: Target) -> Iterator[None]:
    exclusive = request.node.get_closest_marker("exclusive") is not None
    with state_lock(target, exclusive=exclusive):  # drills hold it exclusively too
        yield


@pytest.fixture(scope="session")
def read(db: Any) -> Read:
    """Run one query in a READ ONLY transaction; rows as dicts."""
    from psycopg.rows import dict_row

    def run(sql: str, params: tuple[Any, ...] | None = None) -> list[dict[str, Any]]:
        with db.transaction(), db.cursor(row_factory=dict_row) as cur:
            cur.execute("SET TRANSACTION READ ONLY")
            cur.execute(sql, params)
            return cur.fetchall()

    return run


@pytest.fixture(scope="session")
def stack_paths(target: Target) -> dict[str, str]:
    """The stack's directories by role (only those the target names)."""
    ep = target.endpoints
    named = {"home": ep.home, "models": ep.models_dir, "logs": ep.logs_dir,
             "backups": ep.backups_dir}  # fmt: skip
    return {k: str(v) for k, v in named.items() if v is not None}


@pytest.fixture(scope="session")
def disk_paths(stack_paths: dict[str, str]) -> list[str]:
    """Where the data, models and logs live, plus $OPSDRILL_DISK_PATHS."""
    extra = [p for p in os.environ.get(DISK_PATHS_ENV, "").split(":") if p]
    return list(dict.fromkeys([*stack_paths.values(), *extra]))


@pytest.fixture
def app_metrics(api: httpx.Client) -> AppMetrics:
    resp = api.get("/metrics")
    assert resp.status_code == 200, f"/metrics answered {resp.status_code}: {resp.text[:200]}"
    return parse(resp.text)


@pytest.fixture(scope="session")
def ops(target: Target) -> Callable[..., ExecResult]:
    """The stack's ops CLI (`Target.ops`), where the target runs it."""
    if "ops_cli" not in target.capabilities:
        pytest.skip(f"target {target.name!r} gives no way to run the ops CLI (ops_cli)")

    def run(*args: str, timeout: float = 120) -> ExecResult:
        return target.ops(*args, timeout=timeout)

    return run
