"""Run the locustfile headless in its own process(es) and return a typed `LoadResult`.

Locust never runs in the caller's process (it monkey-patches with gevent). Three shapes:
one local process, `processes=N` (Locust's --processes: a master and N forked workers), or
`workers=N` (a master and N separate `locust --worker` processes on loopback, exactly what
other hosts would run). Every process reads the same OPSDRILL_LOAD_CONFIG and shares one
wall-clock start, so their schedules add up to the target rate.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from opsdrill import ports
from opsdrill.errors import ServiceError
from opsdrill.load import hdr
from opsdrill.load.config import DEFAULT_MIX, ENV_CONFIG, ENV_KEY, LoadConfig
from opsdrill.load.result import LoadResult, endpoint_stats, judge
from opsdrill.polling import poll
from opsdrill.slo.model import GateProfile, SloFile
from opsdrill.slo.parser import load_slo_file
from opsdrill.stack.api import ApiClient

__all__ = ["LoadHandle", "LoadProfile", "default_locustfile", "run_load", "start_load"]

FINISHED = ("completed", "failed", "cancelled")
#: how long Locust may take to start (imports, workers connecting) on a busy machine
START_LIMIT = 60.0


def default_locustfile() -> Path:
    return Path(__file__).resolve().parents[2] / "load" / "locustfile.py"


@dataclass(frozen=True)
class LoadProfile:
    """Target arrival `rate` (requests/s) held for `duration` s after a linear `ramp`.

    The thresholds a run is judged by (confidence, the share of the load that must be sent,
    lateness) are the SLO file's (`slo.yaml` gate:), not the profile's.
    """

    rate: float
    duration: float
    ramp: float = 2.0
    users: int | None = None  # default: see `user_count`
    run_interval: float = 0.0  # a training run every N s during the steady phase; 0 = none
    run_wait: float = 90.0  # how long to wait for submitted runs to finish afterwards
    timeout: float = 5.0  # per request
    run_max_steps: int = 10  # training steps of each submitted run
    mix: tuple[tuple[str, float], ...] = ()  # (kind, share); empty = DEFAULT_MIX
    name: str = ""

    @property
    def user_count(self) -> int:
        """Each user waits for its answer, so it should be free again by its next due time
        (interval timeout + 1 s), but must not idle longer than the server keeps a connection
        alive (uvicorn: 5 s), or reused connections race the server's close: at most 4 s."""
        return self.users or max(2, math.ceil(self.rate * min(self.timeout + 1, 4.0)))

    @classmethod
    def from_gate(cls, p: GateProfile) -> LoadProfile:
        """The load of one of the SLO file's gate profiles."""
        return cls(rate=p.rate, duration=p.duration, ramp=p.ramp, run_interval=p.run_interval,
                   run_wait=p.run_wait, timeout=p.timeout, mix=p.mix, name=p.name)  # fmt: skip


class LoadHandle:
    """A load run in progress (for drills that run under load); `wait()` gives the result."""

    def __init__(self, procs: list[subprocess.Popen[bytes]], cfg: LoadConfig, work: Path,
                 api_url: str, profile: LoadProfile, slo_file: SloFile,
                 workers: int, deadline: float, api_key_given: bool = True) -> None:  # fmt: skip
        self.procs, self.cfg, self.work = procs, cfg, work
        self.api_key_given = api_key_given
        self.api_url, self.profile, self.slo_file = api_url, profile, slo_file
        self.workers, self.deadline = workers, deadline

    def wait(self) -> LoadResult:
        try:
            for proc in self.procs:
                proc.wait(timeout=max(1.0, self.deadline - time.time()))
        except subprocess.TimeoutExpired as exc:
            for proc in self.procs:
                proc.kill()
            raise ServiceError(
                f"Locust did not finish by its deadline; logs in {self.work}"
            ) from exc
        path = Path(self.cfg.result_path)
        if not path.exists():
            log = (self.work / "master.log").read_text()[-800:]
            raise ServiceError(f"Locust wrote no result; the end of its log: {log}")
        return self._result(json.loads(path.read_text()))

    def _result(self, raw: dict) -> LoadResult:
        hists = {k: hdr.decode(v) for k, v in raw["hdr"].items()}
        counts = raw["counts"]
        paced = [k for k in counts if k != "runs:submit"]
        achieved = sum(counts[k]["achieved"] for k in paced)
        gate = self.slo_file.gate
        result = LoadResult(
            target_rate=self.profile.rate,  # as configured, not as the users planned it
            achieved_rate=achieved / self.cfg.duration,
            target_count=math.floor(self.profile.rate * self.cfg.duration),
            achieved_count=achieved,
            duration=self.cfg.duration,
            min_rate_ratio=gate.min_rate,
            complete=raw["complete"],
            workers=len(raw["workers"]),
            endpoints={k: endpoint_stats(k, hists[k], counts[k]) for k in sorted(hists)},
            runs=wait_for_runs(self.api_url, raw["runs"], self.profile.run_wait),
            artefacts={p.name: str(p) for p in sorted(self.work.glob("locust*"))},
            histograms=hists,
            counts=counts,
            profile=self.profile.name,
            scheduled_count=raw["target"],
            late_count=sum(counts[k]["late"] for k in paced),
            late_after=self.cfg.late_after,
            max_late_ratio=gate.max_late,
            mix=dict(self.cfg.mix),
            run_interval=self.profile.run_interval,
            api_key_given=self.api_key_given,
        )
        result.verdicts = judge(result, self.slo_file)
        return result


def wait_for_runs(api_url: str, run_ids: list[int], timeout: float) -> dict[str, int]:
    """Poll the submitted runs until they finish or `timeout` passes; count their outcomes."""
    out = {"completed": 0, "failed": 0, "cancelled": 0, "unfinished": 0}
    pending = list(run_ids)
    api = ApiClient(api_url)

    def all_finished() -> bool | None:
        nonlocal pending
        still = []
        for run_id in pending:
            status = api.run(run_id, timeout=5)["status"]
            if status in FINISHED:
                out[status] += 1
            else:
                still.append(run_id)
        pending = still
        return None if pending else True

    if poll(all_finished, timeout, interval=0.5) is None:
        out["unfinished"] = len(pending)
    return out


def discover_series(
    api_url: str, popular: list[str]
) -> tuple[list[str], list[str], dict[str, int]]:
    """Series with a trained model: the popular ones asked for, the long tail, and the longest
    horizon each one's models allow."""
    models = ApiClient(api_url).models()
    horizons: dict[str, int] = {}
    for m in models:
        horizons[m["series_id"]] = max(horizons.get(m["series_id"], 1), int(m["horizon"]))
    have = sorted(horizons)
    pop = [s for s in popular if s in have] or have[:1]
    return pop, [s for s in have if s not in pop], horizons


def start_load(
    api_url: str,
    profile: LoadProfile,
    *,
    slo_file: SloFile | Path | str = "slo.yaml",
    api_key: str | None = None,
    reports_dir: Path | None = None,
    processes: int = 0,
    workers: int = 0,
    mix: dict[str, float] | None = None,
    popular: tuple[str, ...] = ("airpassengers",),
    raw_dir: Path | None = None,
    locustfile: Path | None = None,
) -> LoadHandle:
    """Launch Locust against `api_url`; return once it runs (`.wait()` for the result).

    The shared start time is set only when every Locust process is up (they wait for it in
    `t0.txt`), so a slow start-up never makes the first requests late.
    """
    slos = slo_file if isinstance(slo_file, SloFile) else load_slo_file(slo_file)
    work = (reports_dir or Path(tempfile.mkdtemp(prefix="opsdrill-load-"))).absolute()
    work.mkdir(parents=True, exist_ok=True)
    pop, tail, horizons = discover_series(api_url, list(popular))
    users = profile.user_count
    t0_file = work / "t0.txt"
    for stale in [t0_file, *work.glob("t0.txt.ready-*")]:
        stale.unlink(missing_ok=True)
    cfg = LoadConfig(
        t0=0.0, t0_file=str(t0_file), ramp=profile.ramp, duration=profile.duration,
        rate_per_user=profile.rate / users, users=users,
        mix=dict(mix or profile.mix or DEFAULT_MIX), popular=pop, long_tail=tail,
        horizons=horizons, run_interval=profile.run_interval,
        run_max_steps=profile.run_max_steps, timeout=profile.timeout,
        late_after=slos.gate.late_after, result_path=str(work / "result.json"),
        raw_dir=str(raw_dir or ""),
    )  # fmt: skip
    env = dict(os.environ, **{ENV_CONFIG: cfg.to_env(), ENV_KEY: api_key or ""})
    bound = START_LIMIT + profile.ramp + profile.duration + profile.timeout + 10
    base = [sys.executable, "-m", "locust", "-f", str(locustfile or default_locustfile())]
    master = [
        *base, "--headless", "-H", api_url, "-u", str(users + 1), "-r", str(users + 1),
        "-t", f"{math.ceil(bound)}s", "--stop-timeout", "0", "--only-summary",
        "--csv", str(work / "locust"), "--html", str(work / "locust.html"),
        "--exit-code-on-error", "0", "--loglevel", "WARNING",
    ]  # fmt: skip
    procs = []
    if processes > 1:
        master += ["--processes", str(processes)]
    elif workers:
        port = ports.free_port()
        master += ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port",
                   str(port), "--expect-workers", str(workers)]  # fmt: skip
        for i in range(workers):
            log = open(work / f"worker-{i}.log", "wb")  # noqa: SIM115 (the child owns it)
            argv = [*base, "--worker", "--master-host", "127.0.0.1",
                    "--master-port", str(port), "--loglevel", "WARNING"]  # fmt: skip
            procs.append(subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT))
    log = open(work / "master.log", "wb")  # noqa: SIM115
    procs.insert(0, subprocess.Popen(master, env=env, stdout=log, stderr=subprocess.STDOUT))
    # the master (or the single process) and every worker say they are ready
    cfg.t0 = release_start(procs, t0_file, 1 + (processes if processes > 1 else workers), work)
    return LoadHandle(procs, cfg, work, api_url, profile, slos, workers or processes,
                      time.time() + bound + 30, api_key_given=bool(api_key))  # fmt: skip


def release_start(procs: list[subprocess.Popen[bytes]], t0_file: Path, expect: int,
                  work: Path) -> float:  # fmt: skip
    """Wait until `expect` Locust processes wait for t0, then give them one (1 s ahead)."""

    def waiting() -> bool | None:
        if len(list(t0_file.parent.glob(f"{t0_file.name}.ready-*"))) >= expect:
            return True
        return False if any(p.poll() is not None for p in procs) else None

    if not poll(waiting, START_LIMIT, interval=0.1):
        for p in procs:
            p.kill()
        log = (work / "master.log").read_text()[-800:]
        raise ServiceError(f"Locust did not start within {START_LIMIT:g} s; its log: {log}")
    time.sleep(0.5)  # the rest of the users spawn (all within ~1 s at -r users+1)
    t0 = time.time() + 1.0
    t0_file.write_text(repr(t0))
    return t0


def run_load(api_url: str, profile: LoadProfile, **kwargs: object) -> LoadResult:
    """Run a load test to the end and judge it against the SLO file (see `start_load`)."""
    return start_load(api_url, profile, **kwargs).wait()  # type: ignore[arg-type]
