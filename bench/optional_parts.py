"""What the optional parts (Redis, MLflow, Ray) cost a cold start: seconds and memory.

    .venv/bin/python bench/optional_parts.py [--repeat 1]

Each repetition starts two fresh stacks under /var/tmp the way `opsdrill up` does (monitoring,
the first model trained), interleaved so load from other work hits both alike: one with every
optional part, one with none (`redis=False, mlflow=False`, OPSDRILL_RAY=0). It prints the wall
time of `up`, each part's own `started in` seconds and each part's memory (USS and RSS of its
process tree) once the stack is up, then destroys the stack.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import psutil

from opsdrill.targets.local import LocalTarget

MIB = 2**20
PARTS = ("redis", "mlflow", "ray_head", "ray_worker")


def stack_once(parts: bool) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix="opsdrill-bench-parts-", dir="/var/tmp"))
    root.chmod(0o755)
    os.environ["OPSDRILL_RAY"] = "1" if parts else "0"
    target = LocalTarget(root / "state", redis=parts, mlflow=parts)
    out: dict[str, float] = {}

    def say(line: str) -> None:
        name = line.split()[0] if line.split() else ""
        if name in PARTS and " started in " in line:
            out[f"{name} start s"] = float(line.split(" started in ")[1].split()[0])

    t0 = time.perf_counter()
    try:
        target.up(say=say)
        out["up s"] = time.perf_counter() - t0
        for name in PARTS if parts else ():
            if name not in target.services or not (pid := target.service(name).pid()):
                continue
            root_proc = psutil.Process(pid)
            procs = [root_proc, *root_proc.children(recursive=True)]
            mem = [p.memory_full_info() for p in procs]
            out[f"{name} USS MiB"] = sum(m.uss for m in mem) / MIB
            out[f"{name} RSS MiB"] = sum(m.rss for m in mem) / MIB
    finally:
        target.destroy()
        shutil.rmtree(root, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    runs: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    for _ in range(args.repeat):
        for parts in (True, False):
            runs[parts].append(stack_once(parts))
    print("| figure (median, min–max) | with Redis, MLflow, Ray | with none |\n|---|---:|---:|")
    keys = sorted({k for r in runs[True] + runs[False] for k in r}, key=lambda k: (k != "up s", k))
    for key in keys:
        cells = []
        for parts in (True, False):
            values = [r[key] for r in runs[parts] if key in r]
            cells.append(f"{statistics.median(values):.1f} ({min(values):.1f}–{max(values):.1f})"
                         if values else "–")  # fmt: skip
        print(f"| {key} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
