"""The Locust side of opsdrill.load: paced users, HDR recording, shipping to the master.

Imported only inside Locust processes (importing locust monkey-patches with gevent). Each
process records into its own HDR histograms; a worker ships what it recorded since its last
report through `report_to_master` (encoded), the master merges in `worker_report`, and the
master (or the single local process) writes the merged result as JSON when Locust quits.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import gevent
from locust import events
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner

from opsdrill.load import hdr
from opsdrill.load.config import CACHE_BYPASS, ENV_KEY, LoadConfig
from opsdrill.load.schedule import UserSchedule
from opsdrill.stack.routes import ROUTES

__all__ = ["Recorder", "paced_loop", "recorder"]

COUNTERS = ("sent", "achieved", "ok", "transport", "http5xx", "http503", "http4xx", "http401",
            "late")  # fmt: skip


class Recorder:
    """This process's samples, and (on the master) everything the workers shipped."""

    def __init__(self) -> None:
        self.hists: dict[str, Any] = {}
        self.counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
        self.target = 0
        self.runs: list[int] = []
        self.raw: list[tuple[str, int]] = []
        self.recorded = 0  # cumulative, this process
        self.shipped = 0
        self.workers: dict[str, dict[str, int]] = {}
        self.config: LoadConfig | None = None
        self.t0_known = False
        self.users = 0  # paced users started in this process

    def cfg(self) -> LoadConfig:
        if self.config is None:
            self.config = LoadConfig.from_env()
        return self.config

    def started(self) -> LoadConfig:
        """The config once the shared start time is known: with `t0_file`, this process says
        it is ready and waits for the parent to write t0 (it does once every process is), so
        a slow Locust start-up on a busy machine cannot eat into the schedule."""
        cfg = self.cfg()
        if not cfg.t0_file or self.t0_known:
            return cfg
        t0 = Path(cfg.t0_file)
        Path(f"{cfg.t0_file}.ready-{os.getpid()}").touch()
        while not t0.exists() or not t0.read_text().strip():
            gevent.sleep(0.05)
        cfg.t0 = float(t0.read_text())
        self.t0_known = True
        return cfg

    def hist(self, kind: str) -> Any:
        if kind not in self.hists:
            self.hists[kind] = hdr.new_histogram()
        return self.hists[kind]

    def record(self, kind: str, due: float, sent: float, done: float, status: int) -> None:
        """One steady-phase request: latency from its due time, outcome by status."""
        cfg = self.cfg()
        latency = done - due
        hdr.record(self.hist(kind), latency)
        c = self.counts[kind]
        c["sent"] += 1
        c["achieved"] += sent < cfg.end
        c["late"] += sent - due > cfg.late_after
        if status == 0:
            c["transport"] += 1
        elif status >= 500:
            c["http5xx"] += 1
            c["http503"] += status in (502, 503, 504)
        elif status >= 400:
            c["http4xx"] += 1
            c["http401"] += status in (401, 403)
        else:
            c["ok"] += 1
        self.recorded += 1
        if cfg.raw_dir:
            self.raw.append((kind, min(max(int(latency * 1_000_000), 1), hdr.HIGHEST_US)))

    def payload(self) -> dict[str, Any]:
        """What was recorded since the last report, encoded, then forgotten here."""
        data = {
            "hdr": {k: hdr.encode(h) for k, h in self.hists.items() if h.get_total_count()},
            "counts": {k: dict(v) for k, v in self.counts.items()},
            "target": self.target,
            "runs": list(self.runs),
        }
        self.shipped += sum(v["sent"] for v in self.counts.values())
        data["recorded"], data["shipped"] = self.recorded, self.shipped
        self.hists.clear()
        self.counts.clear()
        self.target = 0
        self.runs.clear()
        return data

    def absorb(self, client_id: str, data: dict[str, Any]) -> None:
        """Merge one worker report into this (master) recorder."""
        for kind, text in data.get("hdr", {}).items():
            self.hist(kind).add(hdr.decode(text))
        for kind, counts in data.get("counts", {}).items():
            for key, n in counts.items():
                self.counts[kind][key] += n
        self.target += data.get("target", 0)
        self.runs.extend(data.get("runs", []))
        self.workers[client_id] = {"recorded": data["recorded"], "shipped": data["shipped"]}

    def write_result(self, env: Environment) -> None:
        cfg = self.cfg()
        complete = all(w["recorded"] == w["shipped"] for w in self.workers.values())
        result = {
            "hdr": {k: hdr.encode(h) for k, h in self.hists.items()},
            "counts": {k: dict(v) for k, v in self.counts.items()},
            "target": self.target,
            "runs": self.runs,
            "workers": self.workers,
            "complete": complete,
            "distributed": isinstance(env.runner, MasterRunner),
        }
        Path(cfg.result_path).write_text(json.dumps(result))

    def write_raw(self) -> None:
        cfg = self.cfg()
        if cfg.raw_dir and self.raw:
            lines = "".join(f"{k} {v}\n" for k, v in self.raw)
            (Path(cfg.raw_dir) / f"raw-{os.getpid()}.txt").write_text(lines)


recorder = Recorder()


def _response_status(resp: Any) -> int:
    code = getattr(resp, "status_code", 0) or 0
    return int(code)


def paced_loop(user: Any, kinds: list[str], weights: list[float], rate: float) -> None:
    """Send one request per due time until the steady phase ends, then stop this user."""
    cfg = recorder.started()
    rng = random.Random()
    # phases spread evenly (golden-ratio steps), so the users' schedules add up to the rate
    recorder.users += 1
    phase = (recorder.users * 0.6180339887498949) % 1.0
    schedule = UserSchedule(cfg.t0, cfg.ramp, cfg.duration, rate, phase)
    recorder.target += schedule.steady_count()
    for due in schedule.due_times():
        wait = due - time.time()
        if wait > 0:
            gevent.sleep(wait)
        elif time.time() >= cfg.end:
            break  # behind past the end: the rest can only be late and unjudged
        kind = rng.choices(kinds, weights)[0]
        sent = time.time()
        status = send(user, kind, rng)
        if schedule.in_steady(due):
            recorder.record(kind, due, sent, time.time(), status)
    raise StopUser()


def submit_loop(user: Any) -> None:
    """Training-run submissions at `run_interval`, during the steady phase only."""
    cfg = recorder.started()
    rng = random.Random()
    due = cfg.t0 + cfg.ramp + 0.5
    while cfg.run_interval > 0 and due < cfg.end:
        wait = due - time.time()
        if wait > 0:
            gevent.sleep(wait)
        sent = time.time()
        status = send(user, "runs:submit", rng)
        recorder.record("runs:submit", due, sent, time.time(), status)
        due += cfg.run_interval
    raise StopUser()


def send(user: Any, kind: str, rng: random.Random) -> int:
    """One request of `kind`; returns its HTTP status (0: no answer)."""
    cfg = recorder.cfg()
    client = user.client
    name = kind
    popular = cfg.popular or ["airpassengers"]
    tail = cfg.long_tail or popular
    try:
        if kind == "forecast:popular":
            resp = client.get(f"/forecast/{rng.choice(popular)}?horizon=12", name=name)
        elif kind == "forecast:long-tail":
            series = rng.choice(tail)
            resp = client.get(f"/forecast/{series}?horizon={rng.randint(1, 12)}", name=name)
        elif kind == "predict:popular":
            body = {"series_id": rng.choice(popular), "horizon": 12}
            resp = client.post("/predict", json=body, name=name)
        elif kind in ("forecast:cold", "predict:cold"):
            resp = send_cold(client, kind, rng)
        elif kind == "runs:get":
            resp = client.get(f"/runs/{rng.choice(recorder_runs())}", name=name)
        elif kind == "runs:submit":
            body = {"series_id": rng.choice(tail), "model_name": "MLP", "horizon": 12,
                    "max_steps": cfg.run_max_steps, "run_name": "opsdrill-load"}  # fmt: skip
            headers = {"X-API-Key": os.environ.get(ENV_KEY, "")}
            resp = client.post("/runs", json=body, headers=headers, name=name)
            if _response_status(resp) == 201:
                recorder.runs.append(int(resp.json()["run_id"]))
        else:
            resp = client.get(ROUTES[kind], name=name)
    except Exception:  # a failed connection is an outcome, not a crash of the generator
        return 0
    return _response_status(resp)


def send_cold(client: Any, kind: str, rng: random.Random) -> Any:
    """A forecast that runs the model: any series with a model, any horizon it allows, and the
    app's cache-bypass header (it needs the API key; an app without the switch ignores it)."""
    cfg = recorder.cfg()
    series = rng.choice(cfg.popular + cfg.long_tail or ["airpassengers"])
    horizon = rng.randint(1, cfg.horizons.get(series, 12))
    headers = {**CACHE_BYPASS, "X-API-Key": os.environ.get(ENV_KEY, "")}
    if kind == "forecast:cold":
        return client.get(f"/forecast/{series}?horizon={horizon}", headers=headers, name=kind)
    body = {"series_id": series, "horizon": horizon}
    return client.post("/predict", json=body, headers=headers, name=kind)


def recorder_runs() -> list[int]:
    """Run ids worth reading: the first run every stack has."""
    return [1]


@events.report_to_master.add_listener
def _ship(client_id: str, data: dict[str, Any]) -> None:
    data["opsdrill"] = recorder.payload()


@events.worker_report.add_listener
def _receive(client_id: str, data: dict[str, Any]) -> None:
    if "opsdrill" in data:
        recorder.absorb(client_id, data["opsdrill"])


@events.test_start.add_listener
def _autostop(environment: Environment, **_kw: Any) -> None:
    """Quit as soon as every user has finished its schedule, not at the --run-time bound."""
    if isinstance(environment.runner, WorkerRunner):
        return

    def watch() -> None:
        cfg = recorder.started()
        gevent.sleep(max(0.0, cfg.end - time.time()) + 0.5)
        while environment.runner is not None and environment.runner.user_count > 0:
            gevent.sleep(0.25)
        if isinstance(environment.runner, MasterRunner):
            gevent.sleep(1.5)  # let the workers' last heartbeats and reports arrive
        if environment.runner is not None:
            environment.runner.quit()

    gevent.spawn(watch)


@events.quitting.add_listener
def _finish(environment: Environment, **_kw: Any) -> None:
    recorder.write_raw()
    if not isinstance(environment.runner, WorkerRunner):
        recorder.write_result(environment)
