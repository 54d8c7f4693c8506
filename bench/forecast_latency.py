"""Forecast latency at a fixed arrival rate, measured from the intended send time.

    .venv/bin/python bench/forecast_latency.py [--rate 20] [--seconds 15] [--state-dir DIR]

Open loop: request i is due at t0 + i/rate whatever happened to earlier ones, and its latency
counts from that due time, so a stalled server shows in the percentiles instead of silently
slowing the generator (no coordinated omission). Uses a running embedded stack, or starts one.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

import httpx

from opsdrill.targets.local import LocalTarget


async def drive(url: str, rate: float, seconds: float, body: dict) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    total = int(rate * seconds)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=url, timeout=10, limits=limits) as client:
        t0 = time.perf_counter()

        async def one(i: int) -> None:
            nonlocal errors
            due = t0 + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            try:
                resp = await client.post("/predict", json=body)
                ok = resp.status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - due)
            errors += not ok

        await asyncio.gather(*(one(i) for i in range(total)))
    return latencies, errors


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--state-dir", type=Path, default=Path(".opsdrill"))
    args = parser.parse_args()
    target = LocalTarget(args.state_dir)
    started = not target.is_up()
    target.up(say=lambda _line: None)
    try:
        body = {"series_id": "airpassengers", "horizon": 12}
        asyncio.run(drive(target.endpoints.api_url, 5, 1, body))  # warm the model cache
        lat, errors = asyncio.run(drive(target.endpoints.api_url, args.rate, args.seconds, body))
    finally:
        if started:
            target.down(say=lambda _line: None)
    ms = [x * 1000 for x in lat]
    print(f"rate {args.rate}/s for {args.seconds:.0f} s: n={len(ms)} errors={errors} "
          f"p50={percentile(ms, .5):.1f} ms p95={percentile(ms, .95):.1f} ms "
          f"p99={percentile(ms, .99):.1f} ms max={max(ms):.1f} ms "
          f"mean={statistics.fmean(ms):.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
