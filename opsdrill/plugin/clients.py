"""The fixtures checks use to reach the target: `api`, `api_admin`, `db` and testinfra's `host`.

Registered by the plugin at configure time, after every entry-point plugin, so this `host`
overrides testinfra's own: `--target` alone decides where checks look.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import psycopg
import pytest

from opsdrill.targets.base import Target


@pytest.fixture(scope="session")
def api(target: Target) -> Iterator[httpx.Client]:
    """An HTTP client for the stack's API (no API key: read-only endpoints)."""
    with httpx.Client(base_url=target.endpoints.api_url, timeout=10) as client:
        yield client


@pytest.fixture(scope="session")
def api_admin(target: Target) -> Iterator[httpx.Client]:
    """An HTTP client that sends the API key, for endpoints that change state."""
    headers = {"X-API-Key": target.endpoints.api_key or ""}
    with httpx.Client(base_url=target.endpoints.api_url, timeout=10, headers=headers) as client:
        yield client


@pytest.fixture(scope="session")
def db(target: Target) -> Iterator[object]:
    """An autocommit connection to the stack's database as the application role."""
    with psycopg.connect(target.endpoints.dsn, autocommit=True, connect_timeout=5) as conn:
        yield conn


@pytest.fixture(scope="session")
def host(target: Target) -> object:
    """testinfra's host for the target's machine: local here, ssh or docker elsewhere (the
    first host of a fleet; checks of every host take `machine` instead).

    Overrides testinfra's own `host` fixture, so `--target` alone decides where checks look.
    """
    return target.testinfra_host()
