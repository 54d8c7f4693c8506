"""How much load one core of the load tool makes: Locust (FastHttpUser, 1 process) vs wrk.

    .venv/bin/python bench/loadgen_efficiency.py --state-dir /var/tmp/load2/state [--rounds 3]

Both hit the app's `GET /health` in a closed loop at maximum rate with the same number of
connections, in alternating runs (wrk, Locust, wrk, Locust, ...) so drift on the shared
machine hits both alike. On a 2-core box the app itself is usually the bottleneck, so raw
requests/s mostly measure the server; the fair figure is **requests per CPU-second of the
generator** (its user+system time, from wait4), i.e. what one fully-busy core of it would
sustain. Both are reported, with the Locust/wrk ratio.

This file is also the locustfile: Locust imports it as a module and gets `HealthUser`; run as
a script it never imports locust (which would monkey-patch this process with gevent).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __name__ != "__main__":  # imported by Locust as its locustfile
    from locust import FastHttpUser, constant, task

    class HealthUser(FastHttpUser):
        """Closed loop: the next request as soon as the previous answer arrived."""

        wait_time = constant(0)

        @task
        def health(self) -> None:
            self.client.get("/health")


def timed(argv: list[str], timeout: float) -> tuple[str, float, float]:
    """Run `argv`; return (stdout, wall seconds, CPU seconds of the process and its children)."""
    out = tempfile.TemporaryFile()  # noqa: SIM115 (read back below, closed by GC)
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"{argv[0]} did not finish within {timeout:.0f} s")
        time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    out.seek(0)
    return out.read().decode(errors="replace"), wall, usage.ru_utime + usage.ru_stime


def run_wrk(url: str, conns: int, seconds: int) -> dict[str, float]:
    text, _wall, cpu = timed(
        ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", f"{url}/health"], seconds + 30
    )
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in ([\d.]+)s", text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if not rps or not total:
        raise SystemExit(f"wrk printed no figures:\n{text}")
    n = int(total.group(1))
    return {"rps": float(rps.group(1)), "requests": n, "cpu_s": cpu,
            "errors": int(non2xx.group(1)) if non2xx else 0, "req_per_cpu_s": n / cpu}  # fmt: skip


def run_locust(url: str, users: int, seconds: int, work: Path) -> dict[str, float]:
    prefix = work / f"locust-{time.monotonic_ns()}"
    argv = [sys.executable, "-m", "locust", "-f", __file__, "--headless", "-H", url,
            "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--stop-timeout", "0",
            "--only-summary", "--csv", str(prefix), "--loglevel", "WARNING"]  # fmt: skip
    text, wall, cpu = timed(argv, seconds + 60)
    stats = Path(f"{prefix}_stats.csv")
    if not stats.exists():
        raise SystemExit(f"Locust wrote no stats:\n{text[-2000:]}")
    with stats.open() as fh:
        agg = next(r for r in csv.DictReader(fh) if r["Name"] == "Aggregated")
    n, errors = int(agg["Request Count"]), int(agg["Failure Count"])
    # Locust's own Requests/s divides by the whole run; wall minus start-up is close enough
    return {"rps": float(agg["Requests/s"]), "requests": n, "cpu_s": cpu, "errors": errors,
            "req_per_cpu_s": n / cpu, "wall_s": wall}  # fmt: skip


def main() -> None:
    from opsdrill.targets.local import LocalTarget

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--state-dir", type=Path, default=Path(".opsdrill"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not on PATH: install it (apt-get install wrk) and retry")
    target = LocalTarget(args.state_dir)
    started = not target.is_up()
    target.up(say=lambda _line: None)
    url = target.endpoints.api_url
    work = Path(tempfile.mkdtemp(prefix="bench-loadgen-"))
    runs: dict[str, list[dict[str, float]]] = {"wrk": [], "locust": []}
    try:
        for i in range(args.rounds):
            runs["wrk"].append(run_wrk(url, args.connections, args.seconds))
            runs["locust"].append(run_locust(url, args.connections, args.seconds, work))
            print(f"round {i + 1}: wrk {runs['wrk'][-1]['rps']:.0f}/s, "
                  f"locust {runs['locust'][-1]['rps']:.0f}/s", flush=True)  # fmt: skip
    finally:
        if started:
            target.down(say=lambda _line: None)
    summary = {}
    for tool, rows in runs.items():
        summary[tool] = {
            key: round(statistics.median(r[key] for r in rows), 1)
            for key in ("rps", "req_per_cpu_s", "cpu_s", "errors")
        }
        summary[tool]["cpu_share"] = round(
            statistics.median(r["cpu_s"] / args.seconds for r in rows), 2
        )
    summary["ratio_locust_over_wrk"] = {
        "rps": round(summary["locust"]["rps"] / summary["wrk"]["rps"], 3),
        "req_per_cpu_s": round(
            summary["locust"]["req_per_cpu_s"] / summary["wrk"]["req_per_cpu_s"], 3
        ),
    }
    print(json.dumps({"runs": runs, "median": summary}, indent=2))


if __name__ == "__main__":
    main()
