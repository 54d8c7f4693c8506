"""A training worker makes itself the OOM killer's first choice, so a memory limit it shares
with the API (a systemd unit's MemoryMax=, one container) takes a run, never the API."""

from __future__ import annotations

import subprocess
import sys

CHILD = """
from nf_auto_runner.worker import OOM_SCORE_ADJ, prefer_oom_kill
before = open("/proc/self/oom_score_adj").read().strip()
prefer_oom_kill()
print(before, open("/proc/self/oom_score_adj").read().strip(), OOM_SCORE_ADJ)
"""


def test_a_worker_raises_its_own_oom_score_adj_and_nothing_else() -> None:
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                          check=True)  # fmt: skip
    before, after, wanted = done.stdout.split()
    assert after == wanted != before, done.stdout
    with open("/proc/self/oom_score_adj") as fh:
        assert fh.read().strip() == before, "the test's own process changed"
