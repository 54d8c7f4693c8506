"""Cold start to healthy, beside its floor: initdb + postgres start alone.

    .venv/bin/python bench/cold_start.py [--repeat 3] [--quick]

Each repetition uses a new state directory under /var/tmp. The floor is what any stack built on
a fresh PostgreSQL cluster must pay; the ratio says what the app and monitoring add on top.
"db + api → /health 200" is `up` until the app answers /health 200 (the seed and the first
backup that `up` does afterwards are not start-up); "first forecast after /health 200"
restarts the app of a stack with a trained model and times the first forecast sent the
moment /health says 200 — cached (none is, after a restart) and with the cache bypassed.
`--quick` leaves out the monitoring and first-training scenarios.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from opsdrill.ports import free_port
from opsdrill.probes.sql import sql_ok
from opsdrill.targets.local import LocalTarget
from opsdrill.targets.postgres import Cluster, find_bindir, run_user


def fresh_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="opsdrill-bench-", dir="/var/tmp"))
    path.chmod(0o755)
    return path


FLOOR_CPU: list[float] = []


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _process_cpu(pid: int) -> float:
    """utime + stime of a running process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def floor_once() -> float:
    """initdb, start postgres, first successful SELECT 1 (its CPU into FLOOR_CPU)."""
    cpu0 = _children_cpu()
    root = fresh_dir()
    cluster = Cluster(root / "pg", free_port(), find_bindir(), run_user())
    t0 = time.perf_counter()
    cluster.init()
    proc = subprocess.Popen(cluster.server_argv(), user=cluster.user, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    while not sql_ok(cluster.admin_conninfo()):
        time.sleep(0.01)
    elapsed = time.perf_counter() - t0
    proc.terminate()
    proc.wait(30)
    FLOOR_CPU.append(_children_cpu() - cpu0)  # initdb + postgres (incl. its shutdown)
    shutil.rmtree(root)
    return elapsed


def stack_once(train: bool, monitoring: bool, *, to_healthy: bool = False) -> float:
    """Seconds of `up`; with to_healthy, only until the api's line (it is healthy then)."""
    root = fresh_dir()
    target = LocalTarget(root / "state", monitoring=monitoring)
    healthy: list[float] = []
    t0 = time.perf_counter()

    def say(line: str) -> None:
        if line.startswith("api ") and " started in " in line:
            healthy.append(time.perf_counter() - t0)

    target.up(train=train, say=say)
    elapsed = time.perf_counter() - t0
    target.destroy()
    shutil.rmtree(root, ignore_errors=True)
    return healthy[0] if to_healthy else elapsed


def first_forecast_after_restart(repeat: int) -> dict[str, list[float]]:
    """Restart the api of a trained stack; time its start to /health 200 and the first
    forecasts sent right then (ms), with and without the result cache."""
    import httpx

    root = fresh_dir()
    target = LocalTarget(root / "state", monitoring=False)
    out: dict[str, list[float]] = {"restart": [], "cached": [], "bypass": [], "cpu": []}
    try:
        target.up(train=True, say=lambda _line: None)
        api = target.services["api"]
        url = api.url
        key = {"X-API-Key": target.secrets.api_key}
        for _ in range(repeat):
            api.stop()
            t0 = time.perf_counter()
            api.start(timeout=120)
            out["restart"].append(time.perf_counter() - t0)
            out["cpu"].append(_process_cpu(int(api.pid() or 0)))
            with httpx.Client(base_url=str(url), timeout=10) as client:
                for name, headers in (
                    ("cached", {}),
                    ("bypass", {**key, "X-Forecast-Cache": "bypass"}),
                ):
                    t1 = time.perf_counter()
                    resp = client.get(
                        "/forecast/airpassengers", params={"horizon": 12}, headers=headers
                    )
                    out[name].append((time.perf_counter() - t1) * 1000)
                    resp.raise_for_status()
    finally:
        target.destroy()
        shutil.rmtree(root, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="db + api scenarios only")
    args = parser.parse_args()
    rows: dict[str, list[float]] = {}
    for _ in range(args.repeat):  # interleaved, so load from other work hits every row alike
        for name, fn in (
            ("floor: initdb + postgres ready", floor_once),
            ("db + api → /health 200", lambda: stack_once(False, False, to_healthy=True)),
            ("up: db + api (no monitoring, no training)", lambda: stack_once(False, False)),
        ):
            rows.setdefault(name, []).append(fn())
    if not args.quick:
        rows["up: full stack + monitoring, no training"] = [
            stack_once(False, True) for _ in range(args.repeat)
        ]
        rows["up: full stack + first model trained"] = [
            stack_once(True, True) for _ in range(args.repeat)
        ]
    first = first_forecast_after_restart(args.repeat)
    rows["api restart with a model → /health 200"] = first["restart"]
    floor = statistics.median(next(iter(rows.values())))
    print("| scenario | median s | min s | max s | × floor |\n|---|---:|---:|---:|---:|")
    for name, times in rows.items():
        med = statistics.median(times)
        print(f"| {name} | {med:.2f} | {min(times):.2f} | {max(times):.2f} | {med / floor:.1f} |")
    print(
        f"\nCPU seconds (load-independent): floor initdb + postgres median "
        f"{statistics.median(FLOOR_CPU):.2f} s; the app's own CPU from exec to /health 200 "
        f"(restart with a model) median {statistics.median(first['cpu']):.2f} s"
    )
    print(
        "\n| first forecast after /health 200 | median ms | min ms | max ms |\n|---|---:|---:|---:|"
    )
    for name in ("cached", "bypass"):
        ms = first[name]
        label = (
            "result cache (empty after the restart)"
            if name == "cached"
            else "X-Forecast-Cache: bypass"
        )
        print(f"| {label} | {statistics.median(ms):.1f} | {min(ms):.1f} | {max(ms):.1f} |")


if __name__ == "__main__":
    main()
