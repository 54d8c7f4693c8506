"""Runbook §5.2.4 with a real ENOSPC: a 1 MB tmpfs filled to the last block holds NF_HOME.
The storage health check names ENOSPC, and a training run fails with OSError "No space left
on device" in its run row and in system_logs. Needs root (mount); skips otherwise."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from nf_auto_runner.app.health import check_storage

from system.tests.conftest import App, Postgres


@pytest.fixture
def full_home() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root")
    mnt = Path(tempfile.mkdtemp(prefix="nf_full_"))
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount tmpfs here: {done.stderr.strip()}")
    try:
        for d in ("logs/app", "models", "backups", "run"):
            (mnt / d).mkdir(parents=True)
        with contextlib.suppress(OSError), open(mnt / "ballast", "wb") as fh:
            while True:
                fh.write(b"\0" * 4096)
                fh.flush()
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
        mnt.rmdir()


def test_full_disk_is_named_by_health_and_fails_training(
    app: App, pg: Postgres, full_home: Path
) -> None:
    storage = check_storage([full_home / "models", full_home / "logs" / "app"])
    assert storage["status"] == "error" and "ENOSPC" in storage["error"]
    env = dict(app.env, NF_HOME=str(full_home))
    done = app.ops("train-now", "--max-steps", "2", env=env)
    assert done.returncode != 0
    run = json.loads(done.stdout)
    assert run["status"] == "failed" and "No space left on device" in run["error_message"]
    logs = pg.sql(
        "SELECT exception_type, log_message FROM system_logs WHERE run_id = %s", (run["run_id"],)
    )
    assert any(
        r["exception_type"] == "OSError" and "No space left on device" in r["log_message"]
        for r in logs
    ), logs
