"""LocalTarget's opt-ins without a running stack: the data filesystem, options, the cgroup."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from opsdrill.errors import UsageError
from opsdrill.recovery.disk_cleanup import clean_up
from opsdrill.targets.local import DataFilesystem, LocalTarget, WorkerCgroup, parse_size
from opsdrill.targets.model import ExecResult

root_only = pytest.mark.skipif(
    os.geteuid() != 0 or DataFilesystem.supported() is not None, reason="loop mounts need root"
)


def test_parse_size_accepts_units_and_refuses_nonsense() -> None:
    assert parse_size("64m") == 64 * 2**20
    assert parse_size("1G") == 2**30
    for bad in ("lots", "1m"):
        with pytest.raises(UsageError):
            parse_size(bad)


def test_options_are_saved_and_read_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPSDRILL_PROXY", raising=False)
    monkeypatch.delenv("OPSDRILL_DATA_FS_SIZE", raising=False)
    target = LocalTarget(tmp_path, proxy=True, data_fs_size="32m", worker_cgroup=False)
    target.options.save(tmp_path)
    again = LocalTarget(tmp_path)
    assert again.options == target.options
    assert "proxy" in again.services
    assert again.app_dsn().split("@")[1].startswith(f"127.0.0.1:{again._port('proxy_postgres')}")
    assert {p["name"] for p in again.proxies_config()} == {"postgres", "api"}
    plain = LocalTarget(tmp_path / "other", worker_cgroup=False)
    assert "proxy" not in plain.services and plain.toxiproxy_url is None
    assert plain.app_dsn() == plain.endpoints.dsn


@root_only
def test_data_fs_mount_reuse_and_unmount(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "models" / "1").mkdir(parents=True)
    (home / "models" / "1" / "model.bin").write_bytes(b"weights")
    fs = DataFilesystem(tmp_path / "data-fs.img", home, "32m")
    said: list[str] = []
    try:
        fs.mount(said.append)
        assert fs.mounted() and os.path.ismount(home)
        assert (home / "models" / "1" / "model.bin").read_bytes() == b"weights", "not migrated"
        fs.mount(said.append)  # a stale mount left by a killed run is reused
        assert "still mounted" in said[-1]
    finally:
        fs.unmount(said.append)
    assert not os.path.ismount(home)
    fs.mount(said.append)  # the image keeps its contents across unmounts
    try:
        assert (home / "models" / "1" / "model.bin").exists()
    finally:
        fs.unmount(said.append)


def _here(argv: Sequence[str]) -> ExecResult:
    """Run a command on this machine, as `Target.exec` does where the app runs."""
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    return ExecResult(tuple(argv), done.returncode, done.stdout, done.stderr)


def test_clean_up_removes_old_temp_logs_and_models_but_never_the_newest(tmp_path: Path) -> None:
    home = tmp_path
    old = time.time() - 100 * 86400
    for rel in (
        "tmp/x.tmp",
        "logs/app/app.log.3",
        "logs/app/old.log",
        "models/1/m",
        "models/2/m",
        "logs/app/app.log",
    ):
        (home / rel).parent.mkdir(parents=True, exist_ok=True)
        (home / rel).write_bytes(b"x" * 4096)
    for rel in ("tmp/x.tmp", "logs/app/app.log.3", "logs/app/old.log", "models/1", "models/2"):
        os.utime(home / rel, (old, old))
    os.utime(home / "models" / "2", (old + 1, old + 1))
    report = clean_up(_here, home)
    gone = {str(p.relative_to(home)) for p in report.deleted}
    assert gone == {"tmp/x.tmp", "logs/app/app.log.3", "logs/app/old.log", "models/1"}
    assert (home / "models" / "2").exists() and (home / "logs/app/app.log").exists()
    assert report.actions[-1].startswith("§5.2.4 confirm")


def test_worker_cgroup_create_join_and_remove(tmp_path: Path) -> None:
    cgroup = WorkerCgroup.for_state_dir(tmp_path)
    if cgroup is None:
        pytest.skip("needs root and a writable cgroup v1 memory controller")
    cgroup.create()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        cgroup.procs_file.write_text(str(sleeper.pid))
        assert sleeper.pid in cgroup.pids()
        cgroup.remove()  # moves the task out first
        assert not cgroup.path.exists()
        assert sleeper.poll() is None, "removing the cgroup must not kill its tasks"
    finally:
        sleeper.kill()
        sleeper.wait()
        cgroup.remove()
