"""The embedded stack's Ray cluster: a head node with its dashboard and one worker node.

Both run as `ray start --block`, so each node is one process we spawned and track by pid
(`ray start` without `--block` daemonises, and `ray stop` kills every Ray process of the
user by name, other stacks' too). `--block` watches the node's raylet, GCS and agents and
takes them all down when one dies or when it gets SIGTERM, so stopping a node is SIGTERM to
its pid. The worker joins the head exactly as runbook §7.2.1 adds a node
(`ray start --address=HEAD --num-cpus=N`).

Bounded for a 2-core machine: the head schedules nothing (`--num-cpus=0`, Ray's advice for
a head node), the worker offers one CPU, each object store is the 75 MiB minimum, no log
monitor. Measured here (Ray 2.60, loaded 2-core machine): the head alone is ready in
10-17 s and holds about 730 MiB RSS (the `ray start` process itself 240 MiB, dashboard and
dashboard agent about 125 MiB each). The stack starts Ray when the `ray[default]` package is
installed and OPSDRILL_RAY is not 0.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from opsdrill.probes.ray import Node, alive_nodes
from opsdrill.targets.local.process_service import ProcessSpec

__all__ = ["RAY_SERVICES", "Node", "alive_nodes", "head_spec", "ray_enabled", "worker_spec"]

RAY_SERVICES = ("ray_head", "ray_worker")
OBJECT_STORE_BYTES = 80 * 1000 * 1000  # Ray refuses less than 75 MiB
#: the per-node ports Ray would otherwise pick at random (and collide between nodes)
NODE_PORTS = (
    "node-manager-port",
    "object-manager-port",
    "dashboard-agent-listen-port",
    "dashboard-agent-grpc-port",
    "runtime-env-agent-port",
    "metrics-export-port",
)
WORKER_PORTS = 8  # a small range of ports for the node's Python workers

PortOf = Callable[[str], int]


def ray_enabled() -> bool:
    """Ray is part of the stack when installed with its dashboard and not turned off."""
    if os.environ.get("OPSDRILL_RAY", "1").lower() in ("0", "false", "no"):
        return False
    return shutil.which("ray", path=str(Path(sys.executable).parent)) is not None and (
        importlib.util.find_spec("aiohttp_cors") is not None  # ray[default]: the dashboard
    )


#: what Ray appends to its temp dir for its longest socket (the object store's)
_SOCKET_SUFFIX = len("/session_2026-12-04_17-36-31_230319_4194304/sockets/plasma_store")
SOCKET_PATH_MAX = 107  # AF_UNIX: Ray refuses to start past it


def temp_dir(state_dir: Path) -> Path:
    """Ray's temp dir (sessions, logs, sockets): `ray/` in the state directory, unless a
    socket path there would pass AF_UNIX's 107 bytes; then a short one in the system's temp
    directory, named by a hash of the state directory (found again by every later target)."""
    local = state_dir / "ray"
    if len(str(local)) + _SOCKET_SUFFIX <= SOCKET_PATH_MAX:
        return local
    digest = hashlib.sha256(str(state_dir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"opsdrill-ray-{digest}"


def _ray() -> str:
    return str(Path(sys.executable).parent / "ray")


def _node_argv(node: str, port_of: PortOf, temp_dir: Path) -> list[str]:
    argv = [_ray(), "start", "--block", "--disable-usage-stats", "--node-ip-address=127.0.0.1",
            f"--object-store-memory={OBJECT_STORE_BYTES}", "--include-log-monitor=false",
            f"--temp-dir={temp_dir}"]  # fmt: skip
    argv += [f"--{name}={port_of(f'{node}_{name}')}" for name in NODE_PORTS]
    low = port_of(f"{node}_worker_ports")  # a free port; the range after it is checked at start
    return [*argv, f"--min-worker-port={low + 1}", f"--max-worker-port={low + WORKER_PORTS}"]


def _env() -> dict[str, str]:
    return {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}


def head_spec(port_of: PortOf, state_dir: Path) -> ProcessSpec:
    """The head node: GCS on its own port, the dashboard on loopback; it runs no tasks."""
    gcs, dash = port_of("ray_gcs"), port_of("ray_dashboard")
    url = f"http://127.0.0.1:{dash}"
    argv = _node_argv("ray_head", port_of, temp_dir(state_dir))
    argv += ["--head", f"--port={gcs}", "--num-cpus=0", "--include-dashboard=true",
             "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}"]  # fmt: skip
    return ProcessSpec(
        argv=argv,
        env=_env(),
        ready=lambda: alive_nodes(url) is not None,
        url=url,
        port=gcs,
        before_start=lambda: temp_dir(state_dir).mkdir(parents=True, exist_ok=True),
    )


def worker_spec(
    port_of: PortOf, state_dir: Path, num_cpus: int = 1, name: str = "ray_worker"
) -> ProcessSpec:
    """A worker node joining the head the runbook's way (§7.2.1); `name` keys its ports."""
    gcs, dash = port_of("ray_gcs"), port_of("ray_dashboard")
    argv = _node_argv(name, port_of, temp_dir(state_dir))
    argv += [f"--address=127.0.0.1:{gcs}", f"--num-cpus={num_cpus}"]
    url = f"http://127.0.0.1:{dash}"
    return ProcessSpec(
        argv=argv,
        env=_env(),
        ready=lambda: sum(n.cpus for n in alive_nodes(url) or []) >= num_cpus,
        url=f"ray://127.0.0.1:{gcs}",
        stop_signal=signal.SIGTERM,
    )
