"""Forecast latency under load: the cached mix and the cache-cold case, side by side.

    .venv/bin/python bench/load_latency.py --state-dir /var/tmp/load2/state [--seconds 30]

Two profiles in one run against a running embedded stack (started if needed):

- **mix-100**: 100 requests/s of the load gate's realistic mix (`DEFAULT_MIX`, a small
  training run every 10 s) through `opsdrill.load` (Locust, open model, latency from each
  request's due time), the way production traffic mostly hits the forecast cache.
- **cache-cold-20**: 20 forecasts/s, every one with `X-Forecast-Cache: bypass` (and the API
  key), spread over every series with a model and horizons 1–12, open loop from due times;
  every request runs the model.

For each, `ts_forecast_model_runs_total` is read from /metrics before and after, and the
model runs per forecast sent are printed beside the latencies, so the cache-cold figure cannot
silently become a cache measurement (it must be ≈ 1.0) and the mix shows how much the cache
does. Figures: p50/p95/p99 of forecast requests, achieved rate, errors, p95 / 500 ms SLO.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx

from opsdrill.load import LoadProfile, LoadResult, run_load
from opsdrill.load.hdr import merge
from opsdrill.slo.parser import load_slo_file
from opsdrill.targets.local import LocalTarget

ROOT = Path(__file__).resolve().parents[1]
SLO_FILE = ROOT / "slo.yaml"
FORECAST_KINDS = ["forecast:popular", "forecast:long-tail", "predict:popular"]
TAIL_SERIES = ("synthetic_1", "synthetic_2", "synthetic_3")


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


def model_runs(api_url: str) -> float:
    """ts_forecast_model_runs_total from /metrics."""
    for line in httpx.get(f"{api_url}/metrics", timeout=10).text.splitlines():
        if line.startswith("ts_forecast_model_runs_total "):
            return float(line.split()[-1])
    raise SystemExit("the app exposes no ts_forecast_model_runs_total; is it this version?")


async def cache_cold(
    api_url: str, api_key: str, series: list[str], rate: float, seconds: float, warm: float = 2.0
) -> dict[str, object]:
    """Open loop at `rate`: request i is due at t0 + i/rate; latency counts from then."""
    import random

    rng = random.Random(12)
    headers = {"X-API-Key": api_key, "X-Forecast-Cache": "bypass"}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    latencies: list[float] = []
    errors = [0]
    n_warm, n = int(rate * warm), int(rate * seconds)
    async with httpx.AsyncClient(base_url=api_url, timeout=10, limits=limits) as client:

        async def one(due: float, sid: str, h: int, measured: bool) -> None:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            try:
                resp = await client.get(f"/forecast/{sid}", params={"horizon": h}, headers=headers)
                ok = resp.status_code == 200
            except httpx.HTTPError:
                ok = False
            if measured:
                latencies.append(time.perf_counter() - due)
                errors[0] += 0 if ok else 1

        t0 = time.perf_counter() + 0.2
        jobs = [
            one(t0 + i / rate, series[i % len(series)], rng.randint(1, 12), i >= n_warm)
            for i in range(n_warm + n)
        ]
        await asyncio.gather(*jobs)
        elapsed = time.perf_counter() - t0 - warm
    lat = sorted(latencies)

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p / 100 * len(lat)))] * 1000

    return {
        "scenario": f"cache-cold-{rate:g}",
        "target_rate": rate,
        "achieved_rate": round(len(lat) / elapsed, 2),
        "forecast_requests": len(lat),
        "forecast_errors": errors[0],
        "p50": round(pct(50), 1),
        "p95": round(pct(95), 1),
        "p99": round(pct(99), 1),
        "sent_with_warmup": n_warm + n,
    }


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
    parser.add_argument("--cold-rate", type=float, default=20.0, help="cache-cold forecasts/s")
    args = parser.parse_args()
    target = LocalTarget(args.state_dir)
    started = not target.is_up()
    target.up(say=lambda _line: None)
    work = args.out or Path(tempfile.mkdtemp(prefix="bench-load-latency-"))
    work.mkdir(parents=True, exist_ok=True)
    threshold = load_slo_file(SLO_FILE).get("prediction-latency").threshold or 0.5
    key = target.endpoints.api_key
    rows = []
    api = target.endpoints.api_url
    try:
        series = train_tail(target, TAIL_SERIES)
        print(f"series with models: {', '.join(series)}", flush=True)
        before = model_runs(api)
        mix = run_load(
            api,
            LoadProfile(rate=100, duration=args.seconds, ramp=5, run_interval=10, run_wait=60),
            slo_file=SLO_FILE, api_key=key, reports_dir=work / "mix-100",
        )  # fmt: skip
        row = figures("mix-100", mix, threshold)
        row["model_runs"] = model_runs(api) - before
        sent = sum(mix.counts[k]["sent"] for k in FORECAST_KINDS if k in mix.counts)
        row["model_runs_per_forecast"] = round(row["model_runs"] / max(1, sent), 3)
        rows.append(row)
        print(mix.summary(), flush=True)
        before = model_runs(api)
        cold = asyncio.run(cache_cold(api, key or "", series, args.cold_rate, args.seconds))
        runs = model_runs(api) - before
        cold["model_runs"] = runs
        cold["model_runs_per_forecast"] = round(runs / max(1, int(cold["sent_with_warmup"])), 3)
        cold["p95_over_slo"] = round(float(cold["p95"]) / (threshold * 1000), 3)
        rows.append(cold)
    finally:
        if started:
            target.down(say=lambda _line: None)
    print("| profile | achieved / target | forecasts | errors | p50 ms | p95 ms | p99 ms | "
          "p95 / SLO | model runs per forecast |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['scenario']} | {r['achieved_rate']} / {r['target_rate']} | "
              f"{r['forecast_requests']} | {r['forecast_errors']} | {r['p50']} | {r['p95']} | "
              f"{r['p99']} | {r['p95_over_slo']} | {r['model_runs_per_forecast']} |")  # fmt: skip
    print(json.dumps(rows, indent=2))
    print(f"artefacts: {work}", file=sys.stderr)


if __name__ == "__main__":
    main()
