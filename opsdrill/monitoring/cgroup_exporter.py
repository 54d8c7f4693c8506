"""`python -m opsdrill.monitoring.cgroup_exporter --cgroup DIR --port N`: a memory
cgroup seen as a node.

HighMemoryUsage watches a machine: `1 - MemAvailable / MemTotal > 0.85` from node_exporter. On
a shared 24 GiB host, driving that for real means taking about 17 GiB from everything else on
it, so the embedded stack instead shows the rule a smaller machine: the training workers'
memory cgroup, presented the way LXCFS presents a container's /proc/meminfo. On every scrape,
from the cgroup v1 files:

  node_memory_MemTotal_bytes      min(memory.limit_in_bytes, the host's MemTotal)
  node_memory_MemAvailable_bytes  MemTotal - (memory.usage_in_bytes - total_inactive_file)

(reclaimable inactive page cache counts as available, as in the kernel's MemAvailable), with
node_exporter's metric names, scraped in job `node` beside the host's own node_exporter. The
production rule is unchanged: real worker memory against a real limit makes it fire.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

__all__ = ["main", "meminfo", "render"]


def _host_total() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise OSError("no MemTotal in /proc/meminfo")


def meminfo(cgroup: Path) -> tuple[int, int]:
    """(MemTotal, MemAvailable) in bytes of the cgroup, as a machine would report them."""
    limit = int((cgroup / "memory.limit_in_bytes").read_text())
    usage = int((cgroup / "memory.usage_in_bytes").read_text())
    stat = dict(line.split() for line in (cgroup / "memory.stat").read_text().splitlines())
    total = min(limit, _host_total())
    used = max(0, usage - int(stat.get("total_inactive_file", 0)))
    return total, max(0, total - used)


def render(cgroup: Path) -> str:
    total, available = meminfo(cgroup)
    return (
        "# HELP node_memory_MemTotal_bytes Memory information field MemTotal_bytes.\n"
        "# TYPE node_memory_MemTotal_bytes gauge\n"
        f"node_memory_MemTotal_bytes {total}\n"
        "# HELP node_memory_MemAvailable_bytes Memory information field MemAvailable_bytes.\n"
        "# TYPE node_memory_MemAvailable_bytes gauge\n"
        f"node_memory_MemAvailable_bytes {available}\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m opsdrill.monitoring.cgroup_exporter", description=__doc__
    )
    parser.add_argument("--cgroup", type=Path, required=True, help="a cgroup v1 memory directory")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if not (args.cgroup / "memory.usage_in_bytes").exists():
        print(f"cgroup_exporter: {args.cgroup} is not a cgroup v1 memory group; "
              "start the stack as root with cgroup v1 memory", file=sys.stderr)  # fmt: skip
        return 3

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server names the handlers
            try:
                body, code = render(args.cgroup).encode(), 200
            except OSError as exc:  # the group was removed: say so, as a failed scrape
                body, code = f"cannot read {args.cgroup}: {exc}\n".encode(), 503
            self.send_response(code)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # one line per scrape each second would drown the log

    try:
        server = ThreadingHTTPServer((args.host, args.port), Handler)
    except OSError as exc:
        print(f"cgroup_exporter: cannot listen on {args.host}:{args.port}: {exc.strerror}; "
              "choose a free port", file=sys.stderr)  # fmt: skip
        return 3
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
