"""One training run in its own process: `python -m nf_auto_runner.worker RUN_ID`.

A separate process per run means an out-of-memory kill or a crash takes down one run, never
the API. The first thing the worker does is join the cgroup named by NF_WORKER_CGROUP_PROCS,
before torch is imported, so a memory limit applies to all of its allocations. Where the
worker shares a memory limit with the API (a systemd unit's MemoryMax=, one container), it
raises its own oom_score_adj, so the kernel's OOM killer takes a run before the API.
"""

from __future__ import annotations

import os
import sys


def join_cgroup() -> None:
    """Write our pid into the cgroup's procs file, if one is configured."""
    path = os.environ.get("NF_WORKER_CGROUP_PROCS")
    if not path:
        return
    try:
        with open(path, "w") as fh:
            fh.write(str(os.getpid()))
    except OSError as exc:
        print(f"warning: could not join cgroup {path}: {exc.strerror}", file=sys.stderr)


#: oom_score_adj of a worker (-1000..1000; the API keeps 0): under a limit they share, the
#: kernel kills the process with the largest RSS plus this thousandth of the limit, so at 1000
#: a worker (even one just started) always goes before the API
OOM_SCORE_ADJ = 1000


def prefer_oom_kill() -> None:
    """Make this worker the OOM killer's first choice (raising it needs no privilege)."""
    try:
        with open("/proc/self/oom_score_adj", "w") as fh:
            fh.write(str(OOM_SCORE_ADJ))
    except OSError as exc:
        print(f"warning: could not raise oom_score_adj: {exc.strerror}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    join_cgroup()  # before anything else, see the module docstring
    prefer_oom_kill()
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m nf_auto_runner.worker RUN_ID", file=sys.stderr)
        return 2
    from nf_auto_runner.worker_run import run

    return run(int(args[0]))


if __name__ == "__main__":
    sys.exit(main())
