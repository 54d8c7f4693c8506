"""Fixtures for opsdrill's own tests: a throwaway embedded stack shared by the session."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

# A Ray head and worker add 40-50 s and about 1 GiB to every embedded stack start on a 2-core
# machine; tests that need Ray turn it on themselves (tests/test_ray_stack.py).
os.environ.setdefault("OPSDRILL_RAY", "0")


def world_traversable_tmpdir(prefix: str) -> Path:
    """A temp dir the `postgres` user can reach (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="session")
def stack() -> Iterator[object]:
    """One embedded stack for the integration tests, started once and stopped at the end.

    Set OPSDRILL_TEST_STATE_DIR to reuse a stack you keep running while iterating.
    """
    from opsdrill.targets.local import LocalTarget

    keep = os.environ.get("OPSDRILL_TEST_STATE_DIR")
    state = Path(keep) if keep else world_traversable_tmpdir("opsdrill-test-") / "state"
    target = LocalTarget(state)
    target.up(say=lambda line: print(f"[stack] {line}"))
    try:
        yield target
    finally:
        if not keep:
            target.destroy()
