"""Wall time of the read-only checks against a running embedded stack, serial and with xdist.

    .venv/bin/python bench/checks_wall.py --state-dir DIR [--repeat 3]

The issue's goal is < 10 s for the read-only part a scheduler runs every few minutes against
production (`-m "not sandbox and not slow"`); the slow read-only checks (SLO rules' promtool
simulation over days, the runbook doctest's scratch clone) belong to the release gate. Runs
alternate between the modes so drift on this shared machine hits them alike.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def once(state_dir: Path, extra: list[str]) -> float:
    cmd = [sys.executable, "-m", "pytest", "checks", "-q",
           "-p", "no:cacheprovider", f"--target=local:{state_dir}",
           "--opsdrill-reports=/tmp/opsdrill-bench-reports", *extra]  # fmt: skip
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"checks failed, timing is meaningless:\n{done.stdout[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    smoke = ["-m", "not sandbox and not slow"]
    modes = {
        "smoke (read-only, not slow), serial": smoke,
        "smoke (read-only, not slow), -n 2": [*smoke, "-n", "2"],
        "all read-only (incl. slow), serial": ["-m", "not sandbox"],
    }
    times: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(args.repeat):
        for mode, extra in modes.items():
            times[mode].append(once(args.state_dir, extra))
    print("| mode | median s | min s | max s |\n|---|---:|---:|---:|")
    for mode, t in times.items():
        print(f"| {mode} | {statistics.median(t):.2f} | {min(t):.2f} | {max(t):.2f} |")


if __name__ == "__main__":
    main()
