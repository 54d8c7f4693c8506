"""The Target seam on the composed stack, each call doing the real thing through the Engine
API: exec and ops in the api container, files written and filled to a real ENOSPC on the
models tmpfs volume, the api container's memory limit lowered until the kernel OOM-kills a
training run, and a Toxiproxy toxic on the app->db link that /health measures."""

from __future__ import annotations

import time
import uuid
from pathlib import PurePosixPath

import httpx
import pytest

from opsdrill.errors import UsageError
from opsdrill.plugin.waiting import first
from opsdrill.targets import Target
from opsdrill.targets.service_process import ServiceProcess
from tests.docker.conftest import FIRST_MODEL, health_status

pytestmark = pytest.mark.docker


def test_capabilities_are_all_but_gpu(docker_target: Target) -> None:
    assert docker_target.capabilities >= {
        "fault_journal", "admin_sql", "exec", "ops_cli", "service_files", "data_filesystem",
        "memory_limit", "toxiproxy", "service_control",
    }  # fmt: skip
    assert "gpu" not in docker_target.capabilities
    assert docker_target.kind == "compose"
    assert docker_target.journal_dir.parts[-2:] == ("compose", docker_target.project)  # type: ignore[attr-defined]


def test_exec_runs_in_the_container_as_its_user(docker_target: Target) -> None:
    done = docker_target.exec("api", ["id", "-un"])
    assert done.ok and done.stdout.strip() == "nf", done
    assert docker_target.exec("api", ["id", "-un"], user="root").stdout.strip() == "root"
    assert docker_target.exec("api", ["sh", "-c", "echo $X"], env={"X": "y1"}).stdout == "y1\n"
    failed = docker_target.exec("api", ["sh", "-c", "echo oops >&2; exit 3"])
    assert failed.returncode == 3 and failed.output() == "oops"
    slow = docker_target.exec("api", ["sleep", "30"], timeout=1)
    assert slow.returncode == 124 and "timed out" in slow.stderr


def test_detached_exec_returns_a_pid_that_runs_until_killed(docker_target: Target) -> None:
    started = docker_target.exec("api", ["sleep", "300"], detach=True)
    pid = int(started.stdout)

    def signal(sig: str) -> bool:  # kill is a shell builtin in the image, not a binary
        return docker_target.exec("api", ["sh", "-c", f"kill -{sig} {pid}"]).ok

    assert signal("0"), "the detached sleep runs"
    assert signal("9")
    # gone, or a zombie: the container's PID 1 (the api) inherits it and need not reap it
    state = ["sh", "-c", f"awk '{{print $3}}' /proc/{pid}/stat 2>/dev/null || echo gone"]
    first(lambda: docker_target.exec("api", state).stdout.strip() in ("Z", "gone"), 10,
         "the detached sleep killed")  # fmt: skip


def test_ops_cli_runs_on_the_direct_db_link(docker_target: Target) -> None:
    done = docker_target.ops("--help")
    assert done.ok, done.output()
    assert "backup" in done.stdout


def test_files_round_trip_is_atomic_and_keeps_the_owner(docker_target: Target) -> None:
    files = docker_target.files("api")
    path = PurePosixPath("/var/lib/nf_auto_runner/logs/opsdrill-seam-test.txt")
    try:
        files.write_text(path, "one\n")
        assert files.read_text(path) == "one\n" and files.exists(path)
        files.write_text(path, "two\n", mode=0o600)
        assert files.read_text(path) == "two\n"
        stat = docker_target.exec("api", ["stat", "-c", "%U %a", str(path)]).stdout.split()
        assert stat == ["nf", "600"], stat
        leftovers = docker_target.exec("api", ["sh", "-c", f"ls -a {path.parent}"]).stdout
        assert ".opsdrill-" not in leftovers, "no temp file left beside it"
    finally:
        files.remove(path)
    assert not files.exists(path)
    with pytest.raises(FileNotFoundError):
        files.read_text(path)
    files.remove(path)  # a no-op when not there


def test_files_glob_bytes_and_directories_where_each_service_runs(docker_target: Target) -> None:
    """Prometheus's rule files are listed in its own container (not the api's); a binary file
    comes back byte for byte; an emptied directory is removed."""
    rules = docker_target.files("prometheus").glob("/etc/prometheus/rules/*.yml")
    assert rules == ["/etc/prometheus/rules/alerts.yml", "/etc/prometheus/rules/slo_rules.yml"]
    assert docker_target.files("api").glob("/etc/prometheus/rules/*.yml") == []
    files = docker_target.files("api")
    folder = PurePosixPath("/var/lib/nf_auto_runner/backups/opsdrill-seam-dir")
    path = folder / "all-bytes.bin"
    make = 'mkdir -p "$1" && printf "$(printf "\\%03o" $(seq 0 255))" >"$2"'
    assert docker_target.exec("api", ["sh", "-c", make, "sh", str(folder), str(path)]).ok
    try:
        assert files.read_bytes(path) == bytes(range(256))
        assert files.glob(folder / "*") == [str(path)]
    finally:
        files.remove(path)
        files.remove(folder)
    assert not files.exists(folder)
    with pytest.raises(FileNotFoundError):
        files.read_bytes(path)


def test_disk_full_is_a_real_enospc_the_app_reports_and_recovers(docker_target: Target) -> None:
    """Fill the models tmpfs to ENOSPC: /health names it with 503; removing the ballast
    brings 200 back."""
    url = docker_target.endpoints.api_url
    assert health_status(url) == 200, "steady state before the fault"
    with docker_target.ensure_data_fs("256m") as models:
        files = docker_target.files("api")
        ballast = PurePosixPath(models) / ".opsdrill-ballast"
        free = files.free_bytes(models)
        t0 = time.monotonic()
        try:
            written = files.fill(ballast, free + 64 * 1024 * 1024)
            assert written >= free - 1024 * 1024, (written, free)
            assert files.free_bytes(models) < 1024 * 1024
            first(lambda: health_status(url) == 503, 30, "/health 503 on a full models volume")
            mttd = time.monotonic() - t0
            body = httpx.get(f"{url}/health", timeout=5).json()
            assert "storage" in body["failing"] and "ENOSPC" in body["error"], body
        finally:
            files.remove(ballast)
        first(lambda: health_status(url) == 200, 30, "/health 200 once the ballast is gone")
        print(f"\n[disk full] MTTD {mttd:.1f} s  MTTR {time.monotonic() - t0 - mttd:.1f} s")


#: grows by 16 MiB every 10 ms until something stops it (the kernel, at the limit)
GROW = ("import time\nheld = []\nfor _ in range(400):\n"
        "    held.append(bytearray(16 << 20))\n    time.sleep(0.01)\n")  # fmt: skip


def test_lowered_memory_limit_oom_kills_a_process_in_the_api_container(
    docker_target: Target,
) -> None:
    """CI's quick variant of the OOM drill: the api container's limit lowered through the API
    to 64 MiB above its use, a process in it grows into the limit, and the kernel OOM-kills it
    (the container cgroup's oom_kill counter); it asks to go first (oom_score_adj 1000), so
    the api lives on, and lifting the limit leaves /health at 200."""
    container = docker_target.service("api").container  # type: ignore[attr-defined]
    usage = container.stats(stream=False)["memory_stats"]["usage"]
    kills_before = docker_target.oom_kills("api")
    previous = docker_target.set_memory_limit("api", usage + 64 * 1024 * 1024)
    hog = None
    try:
        assert docker_target.memory("api").limit_bytes == usage + 64 * 1024 * 1024
        argv = ["sh", "-c", 'echo 1000 > /proc/self/oom_score_adj && exec python -c "$0"', GROW]
        hog = ServiceProcess.start(docker_target, "api", argv)
        t0 = time.monotonic()
        first(lambda: docker_target.oom_kills("api") > kills_before, 60,
              "a kernel OOM kill in the api container")  # fmt: skip
        print(f"\n[container OOM] kill seen {time.monotonic() - t0:.1f} s after the start")
        first(lambda: not hog.alive(), 10, "the growing process is gone")
        assert docker_target.service("api").is_running(), "the api itself was OOM-killed"
    finally:
        docker_target.set_memory_limit("api", previous)
        if hog is not None:
            hog.kill()
    assert docker_target.memory("api").limit_bytes == previous
    first(lambda: health_status(docker_target.endpoints.api_url) == 200, 60, "/health 200")


@pytest.mark.slow  # a training run grown into the limit: minutes on a loaded machine
def test_lowered_memory_limit_oom_kills_a_training_run(docker_target: Target) -> None:
    """The api container's limit set just above its usage: the training worker (a child in the
    container) outgrows it and the kernel OOM-kills it; the run fails saying so, or the
    container is OOMKilled; lifting the limit (and a restart if the api died) recovers."""
    ep = docker_target.endpoints
    container = docker_target.service("api").container  # type: ignore[attr-defined]
    usage = container.stats(stream=False)["memory_stats"]["usage"]
    kills_before = docker_target.oom_kills("api")
    previous = docker_target.set_memory_limit("worker", usage + 96 * 1024 * 1024)
    try:
        body = dict(FIRST_MODEL, run_name=f"oom-{uuid.uuid4().hex[:6]}")
        resp = httpx.post(f"{ep.api_url}/runs", json=body,
                          headers={"X-API-Key": ep.api_key or ""}, timeout=30)  # fmt: skip
        assert resp.status_code == 201, resp.text
        run_id = resp.json()["run_id"]
        first(lambda: docker_target.oom_kills("api") > kills_before, 300, "a kernel OOM kill")
        api = docker_target.service("api")
        run = first(lambda: not api.is_running() or _finished(ep.api_url, run_id), 120,
                   "the OOM-killed run failed or the api exited")  # fmt: skip
        if api.is_running():
            assert run["status"] == "failed", run
            assert "SIGKILL" in (run.get("error_message") or ""), run
            print(f"\n[container OOM] run failed: {run['error_message']}")
        else:
            assert container.attrs["State"]["OOMKilled"], "the api died, but not of OOM"
            print("\n[container OOM] the api container itself was OOMKilled")
    finally:
        api = docker_target.service("api")
        docker_target.set_memory_limit("worker", previous)
        if not api.is_running():
            api.start(timeout=180)
    first(lambda: health_status(ep.api_url) == 200, 180, "/health 200 after lifting the limit")


def _finished(url: str, run_id: str) -> dict | None:  # type: ignore[type-arg]
    try:
        run = httpx.get(f"{url}/runs/{run_id}", timeout=10).json()
    except httpx.HTTPError:  # the api itself dying of the OOM
        return None
    return run if run["status"] in ("completed", "failed", "cancelled") else None


def test_latency_toxic_on_the_app_db_link_is_measured_by_health(docker_target: Target) -> None:
    link = docker_target.proxy_for("app_db")
    url = docker_target.endpoints.api_url
    toxic = {"name": "opsdrill-seam-latency", "type": "latency", "stream": "downstream",
             "toxicity": 1.0, "attributes": {"latency": 800, "jitter": 0}}  # fmt: skip
    toxics = f"{link.toxiproxy_url}/proxies/{link.proxy}/toxics"
    assert httpx.post(toxics, json=toxic, timeout=5).status_code in (200, 201)
    try:
        t0 = time.monotonic()
        slow = first(lambda: _db_latency(url) >= 800, 30, "/health's db latency >= 800 ms")
        print(f"\n[db latency toxic] MTTD {time.monotonic() - t0:.1f} s ({slow})")
    finally:
        httpx.delete(f"{toxics}/{toxic['name']}", timeout=5)
    first(lambda: _db_latency(url) < 800, 30, "/health's db latency back under 800 ms")
    with pytest.raises(UsageError, match="unknown link"):
        docker_target.proxy_for("nowhere")


def _db_latency(url: str) -> float:
    try:
        body = httpx.get(f"{url}/health", timeout=10).json()
    except httpx.HTTPError:
        return 0.0
    return float(body["components"]["database"].get("latency_ms") or 0.0)
