"""The Ray task that trains one run: it starts the same worker process as without Ray.

This module imports nothing from the app, so the submitter ships it to the cluster by value
(a Ray node needs the app's Python environment for the worker, not this module on its
path). The worker (`python -m nf_auto_runner.worker RUN_ID`) keeps the run's lifecycle in
PostgreSQL exactly as a local one: its claim, heartbeats, result and failure. It dies with
the Ray worker process that started it (PR_SET_PDEATHSIG), so a node that dies takes its
run with it instead of leaving it training unsupervised; `ray.cancel` (KeyboardInterrupt in
the task) terminates it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from typing import IO

__all__ = ["die_with_parent", "run_worker"]

PR_SET_PDEATHSIG = 1
KILL_GRACE = 1.5


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Linux: this process gets `sig` when the thread that started it ends."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig))


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    die_with_parent(signal.SIGKILL)


def _log(path: str) -> IO[bytes] | None:
    try:
        return open(path, "ab")  # closed when the worker ends
    except OSError:  # another machine than the app's: the output stays in Ray's worker log
        return None


def run_worker(run_id: int, env: dict[str, str], cwd: str, log_path: str) -> int:
    """Train run_id in a worker process on this Ray node; its exit status (negative: killed
    by that signal)."""
    # the worker's supervisor is this process: start-up recovery tells an orphan by its parent
    env = {**env, "NF_SUPERVISOR_PID": str(os.getpid())}
    log = _log(log_path)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nf_auto_runner.worker", str(run_id)],
            env=env,
            cwd=cwd if os.path.isdir(cwd) else None,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT if log is not None else None,
            preexec_fn=_die_with_parent,  # prctl only, no locks taken
        )
        try:
            return proc.wait()
        except BaseException:  # ray.cancel: KeyboardInterrupt here; end the worker too
            proc.terminate()
            try:
                proc.wait(timeout=KILL_GRACE)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise
    finally:
        if log is not None:
            log.close()
