"""What the MLflow tracking server costs a stack start: seconds, CPU seconds and memory.

    .venv/bin/python bench/mlflow_cost.py [--repeat 2]

Each repetition starts two fresh stacks under /var/tmp (no monitoring, no training, so the
difference is MLflow's): one with MLflow, one without, interleaved so load from other work
hits both alike. For the MLflow stack it reads MLflow's own start (its `started in` line:
database created, schema migrated, /health 200), the CPU seconds of its processes at that
point (independent of the load) and their memory (RSS and USS of `mlflow server` and its
uvicorn child); it also sums the installed files of the mlflow distributions.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import psutil

from opsdrill.targets.local import LocalTarget

MIB = 2**20


def fresh_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="opsdrill-bench-mlflow-", dir="/var/tmp"))
    path.chmod(0o755)
    return path


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def stack_once(mlflow: bool) -> dict[str, float]:
    """Seconds of `up`; with MLflow, also its start, CPU seconds and memory (MiB)."""
    root = fresh_dir()
    target = LocalTarget(root / "state", monitoring=False, mlflow=mlflow)
    started: list[float] = []

    def say(line: str) -> None:
        if line.startswith("mlflow ") and " started in " in line:
            started.append(float(line.split(" started in ")[1].split()[0]))

    t0 = time.perf_counter()
    try:
        target.up(train=False, say=say)
        out = {"up": time.perf_counter() - t0}
        if mlflow:
            procs = tree(int(target.service("mlflow").pid() or 0))
            mem = [p.memory_full_info() for p in procs]
            cpu = [p.cpu_times() for p in procs]
            out |= {
                "start": started[0],
                "cpu": sum(c.user + c.system for c in cpu),
                "rss": sum(m.rss for m in mem) / MIB,
                "uss": sum(m.uss for m in mem) / MIB,
                "processes": len(procs),
            }
    finally:
        target.destroy()
        shutil.rmtree(root, ignore_errors=True)
    return out


def installed_mib() -> float:
    """Installed size of the mlflow distributions themselves (not their dependencies)."""
    total = 0
    for name in ("mlflow", "mlflow-skinny", "mlflow-tracing"):
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        for f in dist.files or []:
            path = Path(str(dist.locate_file(f)))
            total += path.stat().st_size if path.is_file() else 0
    return total / MIB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    with_mlflow: list[dict[str, float]] = []
    without: list[float] = []
    for _ in range(args.repeat):
        with_mlflow.append(stack_once(True))
        without.append(stack_once(False)["up"])

    def med(key: str) -> str:
        values = [r[key] for r in with_mlflow]
        return f"{statistics.median(values):.1f} ({min(values):.1f}–{max(values):.1f})"

    print("| figure (median, min–max) | value |\n|---|---|")
    print(f"| up, no monitoring, no training, with MLflow (s) | {med('up')} |")
    print(f"| the same without MLflow (s) | {statistics.median(without):.1f} "
          f"({min(without):.1f}–{max(without):.1f}) |")  # fmt: skip
    print(f"| MLflow's own start: database, migrations, /health 200 (s) | {med('start')} |")
    print(f"| MLflow's CPU seconds at ready (load-independent) | {med('cpu')} |")
    print(f"| MLflow's memory, RSS of its {int(with_mlflow[0]['processes'])} processes (MiB) "
          f"| {med('rss')} |")  # fmt: skip
    print(f"| MLflow's memory, USS (MiB) | {med('uss')} |")
    print(f"| mlflow, mlflow-skinny, mlflow-tracing installed (MiB, without deps) "
          f"| {installed_mib():.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
