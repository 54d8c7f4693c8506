"""The stack's training runs as drills see them: the run API, and the worker process behind a run.

Drills submit, read and cancel runs through the API (`POST /runs`, `GET /runs/{id}`,
`POST /runs/{id}/cancel`), as an operator would, and find a run's worker by the pid the
database records for it (`runs.worker_pid`, a pid where the app runs: this machine, the api
container, a host). A pid alone can be recycled, so a worker is held as a `ServiceProcess` (pid
+ start time, read where it runs through `Target.exec`) and only counted as the run's worker
while its command line still says `nf_auto_runner.worker <run_id>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opsdrill.polling import poll
from opsdrill.stack.api import FINISHED, ApiClient
from opsdrill.targets.base import Target
from opsdrill.targets.service_process import ServiceProcess

__all__ = ["ACTIVE", "FINISHED", "NextRun", "RunsClient", "Worker"]

#: where a run's worker runs: beside the app (its child, in its container or unit)
WHERE = "api"

ACTIVE = ("scheduled", "running")


def _status_rss(status: str) -> int:
    """VmRSS in a /proc/PID/status text, in bytes; 0 when absent (a zombie)."""
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass(frozen=True)
class Worker:
    """The training process of one run, identified beyond its pid, where it runs."""

    run_id: int
    process: ServiceProcess

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        """True while this exact process lives (a recycled pid is not it)."""
        return self.process.alive()

    def rss(self) -> int:
        """Resident memory now (VmRSS); 0 once it is gone."""
        if not self.alive():
            return 0
        done = self.process.target.exec(WHERE, ["cat", f"/proc/{self.pid}/status"], timeout=10)
        return _status_rss(done.stdout) if done.ok else 0

    def signal(self, sig: int) -> bool:
        """Send `sig` by pid where it runs, if it is still this process."""
        return self.process.signal(sig)

    @classmethod
    def find(cls, target: Target, run_id: int, pid: int | None) -> Worker | None:
        """The live worker process of `run_id` at `pid` where the app runs, or None."""
        if pid is None:
            return None
        process = ServiceProcess.at(target, WHERE, pid)
        if process is None:
            return None
        done = target.exec(WHERE, ["cat", f"/proc/{pid}/cmdline"], timeout=10)
        argv = done.stdout.split("\0") if done.ok else []
        if "nf_auto_runner.worker" not in argv or str(run_id) not in argv:
            return None
        return cls(run_id, process)


class RunsClient:
    """The run endpoints of one stack's API (`ApiClient`), and the workers behind its runs."""

    def __init__(self, target: Target, timeout: float = 10.0) -> None:
        self.target = target
        endpoints = target.endpoints
        self.url = endpoints.api_url
        self.api = ApiClient(endpoints.api_url, endpoints.api_key, timeout=timeout)

    def submit(self, name: str, *, max_steps: int = 5, model: str = "MLP") -> int:
        """A new scheduled run on the shipped series; its id."""
        return self.api.submit_run({"series_id": "airpassengers", "model_name": model,
                                    "horizon": 12, "max_steps": max_steps,
                                    "run_name": name})  # fmt: skip

    def get(self, run_id: int) -> dict[str, Any]:
        return self.api.run(run_id)

    def with_status(self, status: str, limit: int = 1000) -> list[dict[str, Any]]:
        """Runs with `status`, newest id first."""
        return self.api.runs(status, limit)

    def running(self, limit: int = 1000) -> list[dict[str, Any]]:
        """Runs with status `running`, newest start first."""
        rows = self.with_status("running", limit)
        return sorted(rows, key=lambda r: r.get("start_time") or "", reverse=True)

    def cancel(self, run_id: int, reason: str) -> dict[str, Any] | None:
        """Cancel the run; None when it had already finished (409)."""
        return self.api.cancel_run(run_id, reason)

    def worker(self, run_id: int) -> Worker | None:
        """The live worker of a running run, found through the pid the database records."""
        run = self.get(run_id)
        if run["status"] != "running":
            return None
        return Worker.find(self.target, run_id, run.get("worker_pid"))

    def wait_finished(self, run_id: int, timeout: float) -> dict[str, Any]:
        """The run once it has finished, or as it is when `timeout` seconds have passed."""
        last: dict[str, Any] = {}

        def finished() -> dict[str, Any] | None:
            last.update(run := self.get(run_id))
            return run if run["status"] in FINISHED else None

        return poll(finished, timeout) or last


class NextRun:
    """A short run submitted on first use (the runbook's "the next run succeeds"); then:
    has it completed?"""

    def __init__(self, client: RunsClient, name: str) -> None:
        self.client, self.name = client, name
        self.run_id: int | None = None

    def completed(self) -> bool:
        if self.run_id is None:
            self.run_id = self.client.submit(self.name, max_steps=5)
        return self.client.get(self.run_id)["status"] == "completed"
