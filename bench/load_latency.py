"""Forecast latency under load, through opsdrill.load (open model, timed from each due time).

    .venv/bin/python bench/load_latency.py --state-dir /var/tmp/load2/state [--seconds 30]

Two scenarios against a running embedded stack (started if needed):

- **mix-100**: 100 requests/s of the load gate's realistic mix (`DEFAULT_MIX`, a small
  training run every 10 s), the way production traffic mostly hits the forecast cache.
- **inference-20**: 20 forecasts/s where every request runs the model. The app has no
  cache-bypass parameter and its result cache is keyed by (model, last observation, length),
  not by horizon, so distinct (series, horizon) pairs would still hit it. Instead this starts
  a *replica* of the same app code against the same database and model files with the
  result cache's TTL set to 0 and the executor off, counts `Predictor._predict` calls in it,
  and prints inferences vs requests as proof.

Figures: p50/p95/p99 of forecast requests (`/forecast`, `/predict`), achieved rate, errors,
and p95 as a share of the 500 ms SLO.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from opsdrill import ports
from opsdrill.load import LoadProfile, LoadResult, run_load
from opsdrill.load.hdr import merge
from opsdrill.slo import load_slo_file
from opsdrill.targets.local import LocalTarget

ROOT = Path(__file__).resolve().parents[1]
SLO_FILE = ROOT / "slo.yaml"
FORECAST_KINDS = ["forecast:popular", "forecast:long-tail", "predict:popular"]
#: only forecasts: the inference scenario judges model runs, not /health
INFERENCE_MIX = {"forecast:popular": 0.5, "predict:popular": 0.2, "forecast:long-tail": 0.3}
TAIL_SERIES = ("synthetic_1", "synthetic_2", "synthetic_3")

#: the replica: same app, result cache TTL 0 (every forecast runs the model), no executor,
#: and a count of model runs written to $BENCH_INFERENCES when it shuts down
REPLICA = """
import atexit, os, signal, sys, uvicorn
from nf_auto_runner import config, predictor
from nf_auto_runner.app.application import create_app
predictor.RESULT_TTL = 0.0
calls = [0]
real = predictor.Predictor._predict
def counted(self, ref, points):
    calls[0] += 1
    return real(self, ref, points)
predictor.Predictor._predict = counted
atexit.register(lambda: open(os.environ["BENCH_INFERENCES"], "w").write(str(calls[0])))
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # uvicorn re-raises it after shutdown
uvicorn.run(create_app(config.load(), run_executor=False), host="127.0.0.1",
            port=int(sys.argv[1]), log_level="warning")
"""


def train_tail(target: LocalTarget, series: tuple[str, ...], timeout: float = 180) -> list[str]:
    """Give the long tail models (the mix's `forecast:long-tail` needs them); return trained."""
    api = target.endpoints.api_url
    have = {m["series_id"] for m in httpx.get(f"{api}/models", timeout=10).json()}
    headers = {"X-API-Key": target.endpoints.api_key or ""}
    run_ids = []
    for sid in series:
        if sid not in have:
            body = {"series_id": sid, "model_name": "MLP", "horizon": 12, "max_steps": 20,
                    "run_name": "bench-load-latency"}  # fmt: skip
            resp = httpx.post(f"{api}/runs", json=body, headers=headers, timeout=10)
            resp.raise_for_status()
            run_ids.append(resp.json()["run_id"])
    deadline = time.monotonic() + timeout
    while run_ids and time.monotonic() < deadline:
        states = [httpx.get(f"{api}/runs/{r}", timeout=10).json()["status"] for r in run_ids]
        if all(s in ("completed", "failed", "cancelled") for s in states):
            break
        time.sleep(1)
    return sorted({m["series_id"] for m in httpx.get(f"{api}/models", timeout=10).json()})


class Replica:
    """The no-result-cache replica of the app, on a free loopback port, stopped on exit."""

    def __init__(self, target: LocalTarget, work: Path) -> None:
        self.port = ports.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.count_file = work / "inferences.txt"
        env = dict(target.app_env(), BENCH_INFERENCES=str(self.count_file))
        self.log = open(work / "replica.log", "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen([sys.executable, "-c", REPLICA, str(self.port)], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)  # fmt: skip

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(
                    f"the replica exited ({self.proc.returncode}); see {self.log.name}"
                )
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise SystemExit(f"the replica was not ready within {timeout:.0f} s; see {self.log.name}")

    def stop(self) -> int:
        """Stop it (SIGTERM, graceful) and return how many model runs it made."""
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        return int(self.count_file.read_text()) if self.count_file.exists() else -1


def figures(name: str, result: LoadResult, threshold: float) -> dict[str, object]:
    hist = merge(result.histograms[k] for k in FORECAST_KINDS if k in result.histograms)
    pct = {f"p{p}": hist.get_value_at_percentile(p) / 1000 for p in (50, 95, 99)}
    sent = sum(result.counts[k]["sent"] for k in FORECAST_KINDS if k in result.counts)
    errors = sum(result.counts[k]["transport"] + result.counts[k]["http5xx"]
                 for k in FORECAST_KINDS if k in result.counts)  # fmt: skip
    all_errors = sum(e.errors for e in result.endpoints.values())
    return {
        "scenario": name,
        "target_rate": round(result.target_rate, 2),
        "achieved_rate": round(result.achieved_rate, 2),
        "load_reached": result.load_reached,
        "forecast_requests": sent,
        "forecast_errors": errors,
        "all_errors": all_errors,
        **{k: round(v, 1) for k, v in pct.items()},
        "p95_over_slo": round(pct["p95"] / (threshold * 1000), 3),
        "verdict": result.verdict.value,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--state-dir", type=Path, default=Path(".opsdrill"))
    parser.add_argument("--seconds", type=float, default=30.0, help="steady phase per scenario")
    parser.add_argument("--out", type=Path, default=None, help="Locust artefacts (default: tmp)")
    args = parser.parse_args()
    target = LocalTarget(args.state_dir)
    started = not target.is_up()
    target.up(say=lambda _line: None)
    work = args.out or Path(tempfile.mkdtemp(prefix="bench-load-latency-"))
    work.mkdir(parents=True, exist_ok=True)
    threshold = load_slo_file(SLO_FILE).get("prediction-latency").threshold or 0.5
    key = target.endpoints.api_key
    rows = []
    try:
        series = train_tail(target, TAIL_SERIES)
        print(f"series with models: {', '.join(series)}", flush=True)
        mix = run_load(
            target.endpoints.api_url,
            LoadProfile(rate=100, duration=args.seconds, ramp=5, run_interval=10, run_wait=60),
            slo_file=SLO_FILE, api_key=key, reports_dir=work / "mix-100",
        )  # fmt: skip
        rows.append(figures("mix-100", mix, threshold))
        print(mix.summary(), flush=True)
        replica = Replica(target, work)
        try:
            replica.wait_ready()
            inf = run_load(replica.url, LoadProfile(rate=20, duration=args.seconds, ramp=3),
                           slo_file=SLO_FILE, reports_dir=work / "inference-20",
                           mix=INFERENCE_MIX)  # fmt: skip
        finally:
            inferences = replica.stop()
        row = figures("inference-20", inf, threshold)
        # model runs in the replica: every forecast sent (ramp included) + one warm-up per series
        row["model_runs"] = inferences
        rows.append(row)
        print(inf.summary(), flush=True)
    finally:
        if started:
            target.down(say=lambda _line: None)
    print(json.dumps(rows, indent=2))
    print(f"artefacts: {work}", file=sys.stderr)


if __name__ == "__main__":
    main()
