"""Runbook §6.2.1: MAX_PARALLEL_RUNS fits the machine the runs train on.

The runbook sizes it by CPU count, by GPU count (1–2 runs per GPU) or by memory (about 4 GB
per run). The figure judged is the one the running app uses: its start-up line in app.log.
"""

from __future__ import annotations

import re

import pytest

from opsdrill.probes.host_figures import memory_usage
from opsdrill.targets.base import Target

pytestmark = [pytest.mark.readonly, pytest.mark.runbook("6.2.1")]

STARTED = re.compile(r"nf_auto_runner started \(max (\d+) parallel runs\)")
BYTES_PER_RUN = 4 * 10**9
RUNS_PER_GPU = 2


def test_max_parallel_runs_fits_cpus_gpus_and_memory(machine: Target) -> None:
    host = machine.testinfra_host()
    logs = machine.endpoints.logs_dir
    if logs is None:
        pytest.skip(f"target {machine.name!r} names no logs_dir: cannot read the app's setting")
    lines = host.run(f"grep -h 'parallel runs)' {logs}/app.log").stdout.splitlines()
    found = [int(m[1]) for line in lines if (m := STARTED.search(line))]
    if not found:
        pytest.skip(f"{logs}/app.log holds no start-up line (rotated?): restart to record it")
    runs = found[-1]
    cpus = int(host.run("nproc").stdout.strip())
    gpus = len(host.run("nvidia-smi -L 2>/dev/null").stdout.splitlines())
    memory = memory_usage(host).total_bytes
    by_memory = max(1, memory // BYTES_PER_RUN)
    limit, why = (
        (RUNS_PER_GPU * gpus, f"{gpus} GPU(s) × {RUNS_PER_GPU}")
        if gpus
        else (min(cpus, by_memory), f"{cpus} CPU(s), {memory / 1e9:.1f} GB ÷ 4 GB per run")
    )
    assert runs <= limit, (
        f"the app runs up to {runs} trainings in parallel but this machine fits {limit} "
        f"({why}); fix: set MAX_PARALLEL_RUNS={limit} and restart (runbook 6.2.1)"
    )
