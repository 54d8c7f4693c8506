"""Training runs executed as Ray tasks: the pieces that need no cluster (about a second).

tests/test_ray_stack.py runs them for real on a stack with Ray.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from opsdrill import ports

needs_ray = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("ray", "aiohttp_cors")),
    reason="ray[default] is not installed (pip install -e '.[ray]')",
)


# -- the pieces ------------------------------------------------------------------------------
def test_worker_argv_local_without_ray_and_submitter_with_it() -> None:
    from nf_auto_runner.executor import worker_argv

    assert worker_argv(7, None) == [sys.executable, "-m", "nf_auto_runner.worker", "7"]
    assert worker_argv(7, "127.0.0.1:6379")[2:] == ["nf_auto_runner.ray_submit", "7"]


def test_address_from_the_stack_setting_then_ray_address(monkeypatch: pytest.MonkeyPatch) -> None:
    from nf_auto_runner import ray_cluster

    monkeypatch.delenv("NF_RAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert ray_cluster.address() is None and ray_cluster.status() is None
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    assert ray_cluster.address() == "10.0.0.5:6379"
    monkeypatch.setenv("NF_RAY_ADDRESS", "127.0.0.1:7000")
    assert ray_cluster.address() == "127.0.0.1:7000"


def test_probe_says_why_a_closed_head_does_not_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    from nf_auto_runner import ray_cluster

    addr = f"127.0.0.1:{ports.free_port()}"
    error = ray_cluster.probe(addr)
    assert error is not None and "ConnectionRefusedError" in error
    monkeypatch.setenv("NF_RAY_ADDRESS", addr)
    status = ray_cluster.status()
    assert status is not None and status["status"] == "degraded"
    assert addr in status["error"] and "refused" in status["error"]


def test_task_options_one_attempt_and_parallel_runs_fit_one_cpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from nf_auto_runner.ray_submit import describe_task_exit, task_options

    monkeypatch.delenv("NF_RAY_TASK_CPUS", raising=False)
    assert task_options(2) == {"num_cpus": 0.5, "max_retries": 0, "retry_exceptions": False}
    monkeypatch.setenv("NF_RAY_TASK_CPUS", "1")
    assert task_options(2)["num_cpus"] == 1.0
    assert "SIGKILL" in describe_task_exit(-9) and "Ray node" in describe_task_exit(-9)
    assert "status 2" in describe_task_exit(2)


def test_reason_keeps_what_happened_not_rays_advice() -> None:
    from nf_auto_runner.ray_submit import reason

    class NodeDiedError(Exception):
        pass

    text = (
        "Task failed because the node it was running on is dead or unavailable. Node IP: "
        "192.0.2.2, node ID: 99b1. This can happen if the node was preempted. To see ..."
    )
    assert reason(NodeDiedError(text)) == (
        "NodeDiedError: Task failed because the node it was running on is dead or "
        "unavailable. Node IP: 192.0.2.2, node ID: 99b1."
    )


def test_task_worker_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG: a Ray worker process that dies (its node killed) takes the training
    worker with it; without it the run would go on training unsupervised."""
    script = (
        "import subprocess, sys\n"
        "from nf_auto_runner.ray_task import _die_with_parent\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],"
        " preexec_fn=_die_with_parent)\n"
        "print(p.pid, flush=True)\n"
        "import time; time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while _state(child) not in ("gone", "Z") and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = _state(child) not in ("gone", "Z")
    if alive:
        os.kill(child, signal.SIGKILL)
    assert not alive, "the training worker outlived the process that started it"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
    except OSError:
        return "gone"


def test_nodes_unknown_when_the_dashboard_is_down() -> None:
    """The probe the checks rely on says None, not an empty cluster, when nothing answers."""
    from opsdrill.probes.ray import alive_nodes

    assert alive_nodes(f"http://127.0.0.1:{ports.free_port()}") is None


STATUS = """======== Autoscaler status: 2026-12-04 16:26:46.943043 ========
Node status
---------------------------------------------------------------
Active:
 1 node_c6f635b4a475d5cc97d34c7df2aba8e6438c520f3596c2ecd91359b8
 1 node_0f2e
Pending:
 (no pending nodes)
Recent failures:
 (no failures)

Resources
---------------------------------------------------------------
Total Usage:
 0.5/1.0 CPU
 0B/21.78GiB memory
"""


def test_ray_status_parsed() -> None:
    from opsdrill.probes.ray import parse_status

    status = parse_status(STATUS)
    assert status is not None and (status.active, status.cpus_used, status.cpus_total) == (
        2, 0.5, 1.0)  # fmt: skip
    assert parse_status("ConnectionError: could not find any running Ray instance") is None


def test_executor_claims_nothing_while_the_ray_head_does_not_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Runs claimed while the head is down could only fail: they stay scheduled."""
    import socket

    from nf_auto_runner.executor import Executor

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("NF_RAY_ADDRESS", raising=False)
    assert Executor(None, None)._ray_answers()  # type: ignore[arg-type]  # no Ray: always
    with socket.create_server(("127.0.0.1", 0)) as head:
        monkeypatch.setenv("NF_RAY_ADDRESS", f"127.0.0.1:{head.getsockname()[1]}")
        assert Executor(None, None)._ray_answers()  # type: ignore[arg-type]
    monkeypatch.setenv("NF_RAY_ADDRESS", f"127.0.0.1:{ports.free_port()}")
    assert not Executor(None, None)._ray_answers()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("components", "expected"),
    [({"database": {}}, True), ({"database": {}, "ray": {"status": "ok"}}, False)],
    ids=["app-without-ray", "app-with-ray"],
)
def test_game_day_expects_the_ray_skips_only_where_the_app_has_no_ray(
    components: dict, expected: bool
) -> None:
    """The repo plan's `no_ray` entries, judged against a /health with and without Ray."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from opsdrill.gameday.junit import SkippedTest
    from opsdrill.gameday.plan import Conditions, GameDayPlan

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"status": "ok", "components": components}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        here = Conditions(f"http://127.0.0.1:{server.server_address[1]}")
        plan = GameDayPlan.load(Path(__file__).resolve().parents[1] / "gameday.yaml")
        why = "target 'local' runs no Ray cluster (install 'ray[default]')"
        for suite, test in (("checks", "checks/test_ray.py::test_nodes_alive_with_resources"),
                            ("chaos", "chaos/test_ray_head_down.py::test_x")):  # fmt: skip
            assert plan.judge(suite, SkippedTest(test, why), here).expected is expected
        other = SkippedTest("checks/test_ray.py::test_x", "destructive: pass --allow-destructive")
        assert not plan.judge("checks", other, here).expected, "only the no-Ray skip"
    finally:
        server.shutdown()


def test_ray_temp_dir_stays_under_the_socket_path_limit(tmp_path: Path) -> None:
    """Ray refuses to start where its object store's socket path passes 107 bytes (a bench
    stack under /var/tmp/opsdrill-bench-parts-XXXXXXXX/state did): a long state directory
    gets a short temp dir, the same one for every target built on it."""
    from opsdrill.targets.local import ray_service

    short = Path("/var/tmp/s")
    assert ray_service.temp_dir(short) == short / "ray"
    long = tmp_path / ("x" * 60) / "state"
    chosen = ray_service.temp_dir(long)
    assert chosen == ray_service.temp_dir(long) and not chosen.is_relative_to(long)
    plasma = f"{chosen}/session_2026-12-04_17-36-31_230319_4194304/sockets/plasma_store"
    assert len(plasma) <= ray_service.SOCKET_PATH_MAX, plasma
