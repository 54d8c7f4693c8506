"""Cold start to healthy, beside its floor: initdb + postgres start alone.

    .venv/bin/python bench/cold_start.py [--repeat 3] [--train]

Each repetition uses a new state directory under /var/tmp. The floor is what any stack built on
a fresh PostgreSQL cluster must pay; the ratio says what the app and monitoring add on top.
"""

from __future__ import annotations

import argparse
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


def floor_once() -> float:
    """initdb, start postgres, first successful SELECT 1."""
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
    shutil.rmtree(root)
    return elapsed


def stack_once(train: bool, monitoring: bool) -> float:
    root = fresh_dir()
    target = LocalTarget(root / "state", monitoring=monitoring)
    t0 = time.perf_counter()
    target.up(train=train, say=lambda _line: None)
    elapsed = time.perf_counter() - t0
    target.destroy()
    shutil.rmtree(root, ignore_errors=True)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = {
        "floor: initdb + postgres ready": [floor_once() for _ in range(args.repeat)],
        "up: db + api (no monitoring, no training)": [
            stack_once(False, False) for _ in range(args.repeat)
        ],
        "up: full stack + monitoring, no training": [
            stack_once(False, True) for _ in range(args.repeat)
        ],
        "up: full stack + first model trained": [
            stack_once(True, True) for _ in range(args.repeat)
        ],
    }
    floor = statistics.median(next(iter(rows.values())))
    print("| scenario | median s | min s | max s | × floor |\n|---|---:|---:|---:|---:|")
    for name, times in rows.items():
        med = statistics.median(times)
        print(f"| {name} | {med:.2f} | {min(times):.2f} | {max(times):.2f} | {med / floor:.1f} |")


if __name__ == "__main__":
    main()
