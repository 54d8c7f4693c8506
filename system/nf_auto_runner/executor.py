"""The executor: a thread in the app process that claims scheduled runs and supervises workers.

Each poll it (1) reaps finished workers and fails runs whose worker died without reporting,
naming the signal; (2) kills workers whose run was cancelled; (3) claims runs while fewer
than MAX_PARALLEL_RUNS are active here; (4) refreshes the run gauges for /metrics.
Claiming is `FOR UPDATE SKIP LOCKED`, so several app processes never train a run twice.
On shutdown, workers are terminated and their runs go back to `scheduled`.

With a Ray cluster (NF_RAY_ADDRESS, see `ray_cluster`) each run's process is
`nf_auto_runner.ray_submit`, which trains it as a Ray task and is supervised the same way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import IO, Any

from nf_auto_runner import ray_cluster, runs, tracking
from nf_auto_runner.app import metrics
from nf_auto_runner.config import Settings
from nf_auto_runner.db import Database

__all__ = ["Executor", "describe_exit", "worker_argv"]

log = logging.getLogger(__name__)

SWEEP_SECONDS = 10.0
KILL_GRACE = 1.5


@dataclass
class Worker:
    run_id: int
    proc: subprocess.Popen[bytes]
    log_file: IO[bytes]
    started: float = field(default_factory=time.monotonic)
    cancelled: bool = False


def describe_exit(code: int) -> str:
    """Human wording for a worker's exit status, e.g. 'killed by SIGKILL (exit -9)'."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = ", possibly out of memory" if -code == signal.SIGKILL else ""
        return f"worker killed by {name} (exit {code}){hint}"
    return f"worker exited with status {code} without recording a result"


def worker_argv(run_id: int, ray_address: str | None) -> list[str]:
    """The process that trains run_id: here, or sent to the Ray cluster at ray_address."""
    module = "nf_auto_runner.ray_submit" if ray_address else "nf_auto_runner.worker"
    return [sys.executable, "-m", module, str(run_id)]


class Executor:
    """Claims and supervises training runs for one app process."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.workers: dict[int, Worker] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_sweep = time.monotonic()
        self.claiming = True
        self.ray_address = ray_cluster.address()
        self._ray_down_logged = False

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="executor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop claiming, terminate workers, requeue their runs."""
        self.claiming = False
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for w in list(self.workers.values()):
            self._terminate(w)
            try:
                with self.db.connection(timeout=2.0) as conn:
                    if runs.requeue(conn, w.run_id, "requeued: app shut down during training"):
                        log.warning("run %s requeued: app shutting down", w.run_id)
            except Exception as exc:
                log.error("could not requeue run %s at shutdown: %s", w.run_id, exc)
            w.log_file.close()
        self.workers.clear()

    def recover_at_startup(self) -> list[int]:
        """Fail runs a previous process left `running` on this host: its worker is gone, or
        outlived it (then killed). Off with NF_ORPHAN_RECOVERY_AT_START=0."""
        if not self.settings.orphan_recovery_at_start:
            log.warning("start-up orphan recovery is off (NF_ORPHAN_RECOVERY_AT_START=0)")
            return []
        with self.db.connection() as conn:
            lost = runs.recover_orphans(conn, self.settings.stale_heartbeat_seconds)
        for run_id in lost:
            log.error(
                "run %s orphaned: worker lost at restart; marked failed",
                run_id,
                extra={"run_id": run_id, "skip_db": True},
            )
        return lost

    # -- the loop --------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception as exc:  # the database may be down; try again next poll
                log.debug("executor poll failed: %s", exc)
            self._stop.wait(self.settings.poll_interval)

    def poll_once(self) -> None:
        self._reap()
        if self.workers:
            self._enforce_cancellations()
        while (
            self.claiming
            and len(self.workers) < self.settings.max_parallel_runs
            and self._ray_answers()
        ):
            if not self._claim_one():
                break
        if time.monotonic() - self._last_sweep > SWEEP_SECONDS:
            self._last_sweep = time.monotonic()
            with self.db.connection() as conn:
                runs.recover_orphans(
                    conn,
                    self.settings.stale_heartbeat_seconds,
                    check_pids=False,
                    exclude=set(self.workers),
                )
                tracking.spawn_catch_up(  # completed runs MLflow has not got yet
                    conn, self.settings.child_env(), self.settings.logs_dir / "tracking.log"
                )
        self._refresh_gauges()

    def _ray_answers(self) -> bool:
        """Without Ray, always; with Ray, whether its head answers: runs claimed meanwhile
        could only fail, so they stay `scheduled` until it is back."""
        if self.ray_address is None:
            return True
        error = ray_cluster.probe(self.ray_address)
        if error is not None and not self._ray_down_logged:
            log.warning("not claiming runs: %s", ray_cluster.unavailable_message(
                self.ray_address, error))  # fmt: skip
        self._ray_down_logged = error is not None
        return error is None

    def _reap(self) -> None:
        for run_id, w in list(self.workers.items()):
            code = w.proc.poll()
            if code is None:
                continue
            if not w.cancelled:  # conditional: a no-op unless the run is still `running`
                self._fail_dead_worker(run_id, code)
            w.log_file.close()
            del self.workers[run_id]

    def _fail_dead_worker(self, run_id: int, code: int) -> None:
        message = describe_exit(code)
        with self.db.connection() as conn:
            if runs.fail_if_running(conn, run_id, message):
                runs.log_row(
                    conn,
                    "ERROR",
                    f"run {run_id} failed: {message}",
                    run_id=run_id,
                    exception_type="WorkerKilled" if code < 0 else "WorkerExited",
                    logger=__name__,
                )
                log.error(
                    "run %s failed: %s", run_id, message, extra={"run_id": run_id, "skip_db": True}
                )

    def _enforce_cancellations(self) -> None:
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT run_id, status FROM runs WHERE run_id = ANY(%s)", (list(self.workers),)
            ).fetchall()
        for r in rows:
            w = self.workers.get(r["run_id"])
            # `completed` means the worker is finishing on its own: let it exit
            if w is not None and r["status"] not in ("running", "completed") and not w.cancelled:
                w.cancelled = True
                log.info(
                    "run %s is %s; terminating worker pid %s", r["run_id"], r["status"], w.proc.pid
                )
                self._terminate(w)

    def _terminate(self, w: Worker) -> None:
        if w.proc.poll() is not None:
            return
        w.proc.terminate()
        try:
            w.proc.wait(timeout=KILL_GRACE)
        except subprocess.TimeoutExpired:
            w.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                w.proc.wait(timeout=KILL_GRACE)

    def _claim_one(self) -> bool:
        with self.db.connection() as conn:
            row = runs.claim_next(conn, os.getpid())
        if row is None:
            return False
        self._spawn(row)
        return True

    def _spawn(self, row: dict[str, Any]) -> None:
        run_id = row["run_id"]
        path = self.settings.logs_dir / f"worker_{run_id}.log"
        try:
            log_file = open(path, "ab")  # noqa: SIM115 - closed when the worker is reaped
            proc = subprocess.Popen(
                worker_argv(run_id, self.ray_address),
                # who supervises it: start-up recovery tells an orphan by a different parent
                env={**self.settings.child_env(), "NF_SUPERVISOR_PID": str(os.getpid())},
                cwd=self.settings.home,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            with self.db.connection() as conn:
                runs.fail_if_running(conn, run_id, f"could not start worker: {exc}")
            log.error(
                "run %s: could not start worker: %s",
                run_id,
                exc,
                extra={"run_id": run_id, "exception_type": type(exc).__name__},
            )
            return
        self.workers[run_id] = Worker(run_id, proc, log_file)
        with self.db.connection() as conn:
            conn.execute(
                "UPDATE runs SET worker_pid = %s WHERE run_id = %s AND status = 'running'",
                (proc.pid, run_id),
            )
        log.info(
            "run %s claimed: %s on %s, worker pid %s%s",
            run_id,
            row["model_name"],
            row["series_id"],
            proc.pid,
            f" (Ray task on {self.ray_address})" if self.ray_address else "",
        )

    def _refresh_gauges(self) -> None:
        with self.db.connection() as conn:
            queued = conn.execute(
                "SELECT count(*) AS n FROM runs WHERE status = 'scheduled'"
            ).fetchone()
            running = conn.execute(
                "SELECT run_id, EXTRACT(EPOCH FROM start_time) AS t FROM runs "
                "WHERE status = 'running'"
            ).fetchall()
            finished = conn.execute(
                "SELECT status, count(*) AS n FROM runs "
                "WHERE status IN ('completed', 'failed', 'cancelled') GROUP BY status"
            ).fetchall()
        metrics.set_run_gauges(
            queued["n"] if queued else 0, {r["run_id"]: float(r["t"] or 0) for r in running}
        )
        metrics.set_finished_runs({r["status"]: int(r["n"]) for r in finished})
