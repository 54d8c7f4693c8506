"""One training run in its own process: `python -m nf_auto_runner.worker RUN_ID`.

A separate process per run means an out-of-memory kill or a crash takes down one run, never
the API. The first thing the worker does is join the cgroup named by NF_WORKER_CGROUP_PROCS,
before torch is imported, so a memory limit applies to all of its allocations.
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


def main(argv: list[str] | None = None) -> int:
    join_cgroup()  # before anything else, see the module docstring
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m nf_auto_runner.worker RUN_ID", file=sys.stderr)
        return 2
    from nf_auto_runner.worker_run import run

    return run(int(args[0]))


if __name__ == "__main__":
    sys.exit(main())
