"""One training run sent to the Ray cluster: `python -m nf_auto_runner.ray_submit RUN_ID`.

The executor starts this in place of `python -m nf_auto_runner.worker RUN_ID` when runs
execute on Ray, and supervises it the same way (reaped by exit status, SIGTERM to cancel).
It connects to the cluster as a Ray driver in its own process, so a Ray head that dies never
takes the API with it, submits `ray_task.run_worker` (one attempt: `max_retries=0`), and
waits. SIGTERM becomes `ray.cancel` of the task, and so does the death of the app (SIGTERM
by PR_SET_PDEATHSIG), as a local worker's orphan would be killed at the app's restart. When
the task is lost (its node died, the cluster went away) it fails the run with the reason,
conditionally, as the executor does for a dead local worker. Exit status: the worker's, or
1 (failed here), or 3 (cancelled).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from types import FrameType
from typing import Any

from nf_auto_runner import config, ray_cluster, ray_task, runs
from nf_auto_runner.db import connect

__all__ = ["describe_task_exit", "main", "reason", "task_options"]

log = logging.getLogger("nf_auto_runner.ray_submit")

EXIT_FAILED = 1
EXIT_CANCELLED = 3
CANCEL_WAIT = 10.0


class Cancelled(Exception):
    """SIGTERM from the executor: the run was cancelled or the app is shutting down."""


def task_options(max_parallel_runs: int) -> dict[str, Any]:
    """One attempt, and a CPU share such that MAX_PARALLEL_RUNS runs fit one 1-CPU node
    (NF_RAY_TASK_CPUS overrides it)."""
    cpus = float(os.environ.get("NF_RAY_TASK_CPUS") or 1.0 / max(1, max_parallel_runs))
    return {"num_cpus": cpus, "max_retries": 0, "retry_exceptions": False}


def describe_task_exit(code: int) -> str:
    """The reason recorded when the worker on the Ray node ended without a result."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"worker on the Ray node killed by {name} (exit {code})"
    return f"worker on the Ray node exited with status {code} without recording a result"


def _fail(url: str, run_id: int, message: str, kind: str) -> None:
    log.error("run %s failed: %s", run_id, message)
    try:
        with connect(url, autocommit=True, application_name="nf_auto_runner-ray") as conn:
            if runs.fail_if_running(conn, run_id, message):
                runs.log_row(
                    conn,
                    "ERROR",
                    f"run {run_id} failed: {message}",
                    run_id=run_id,
                    exception_type=kind,
                    logger=log.name,
                )
    except Exception as exc:  # the executor's reaper still fails the run by our exit status
        log.error("could not record the failure of run %s: %s", run_id, exc)


def reason(exc: BaseException, limit: int = 300) -> str:
    """`Kind: first sentence(s)` of a Ray error, without its advice on where to look."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = text.split(" This can happen", 1)[0].split(" To see ", 1)[0]
    return f"{type(exc).__name__}: {text}"[:limit]


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Cancelled()


def submit(run_id: int, settings: config.Settings, addr: str) -> int:
    import ray

    try:
        ray.init(address=addr, log_to_driver=False, logging_level=logging.WARNING)
    except Exception as exc:
        message = f"Ray cluster at {addr} unavailable: {reason(exc)}"
        _fail(settings.database_url, run_id, message, "RayUnavailable")
        return EXIT_FAILED
    env = {k: v for k, v in settings.child_env().items() if not k.startswith("RAY_")}
    log_path = str(settings.logs_dir / f"worker_{run_id}.log")
    task = ray.remote(ray_task.run_worker).options(**task_options(settings.max_parallel_runs))
    ref = task.remote(run_id, env, str(settings.home), log_path)
    try:
        code = int(ray.get(ref))
    except Cancelled:
        ray.cancel(ref)  # KeyboardInterrupt in the task: it terminates the worker
        ray.wait([ref], timeout=CANCEL_WAIT)
        return EXIT_CANCELLED
    except ray.exceptions.RayError as exc:
        _fail(settings.database_url, run_id, f"Ray task lost: {reason(exc)}", "RayTaskLost")
        return EXIT_FAILED
    if code not in (0, EXIT_FAILED, EXIT_CANCELLED):  # 1 and 3: the worker recorded why
        _fail(settings.database_url, run_id, describe_task_exit(code),
              "WorkerKilled" if code < 0 else "WorkerExited")  # fmt: skip
    return code if code >= 0 else EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m nf_auto_runner.ray_submit RUN_ID", file=sys.stderr)
        return 2
    addr = ray_cluster.address()
    if addr is None:
        print("NF_RAY_ADDRESS (or RAY_ADDRESS) is not set", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    signal.signal(signal.SIGTERM, _on_sigterm)
    # the app dying (SIGKILL, OOM) cancels the task as a cancel would: the run's worker ends,
    # and the app's start-up recovery fails the run as "worker lost at restart"
    ray_task.die_with_parent(signal.SIGTERM)
    supervisor = os.environ.get("NF_SUPERVISOR_PID", "")
    if supervisor.isdigit() and os.getppid() != int(supervisor):  # it died before we asked
        return EXIT_CANCELLED
    # ship ray_task by value: a Ray node need not have this package on its path
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(ray_task)
    try:
        return submit(int(args[0]), config.load(), addr)
    except Cancelled:
        return EXIT_CANCELLED


if __name__ == "__main__":
    sys.exit(main())
