"""The integrity oracle reads model files and the newest backup where the app runs, with the
same labels and checksums as when it reads them here: the remote script run for real by `sh`
on a tree made here, compared with the local reading of the same tree."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from opsdrill.drill.integrity_files import local_sums, remote_sums
from opsdrill.targets.model import ExecResult


def _run(argv: Sequence[str]) -> ExecResult:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    return ExecResult(tuple(argv), done.returncode, done.stdout, done.stderr)


def _tree(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    models, backups = tmp_path / "models", tmp_path / "backups"
    (models / "7" / "sub").mkdir(parents=True)
    (models / "7" / "model.pt").write_bytes(b"weights")
    (models / "7" / "sub" / "cfg with space.json").write_text("{}")
    (models / "8.pt").write_bytes(b"one file")
    (models / "9").mkdir()  # a model directory left empty
    backups.mkdir()
    for age, name in ((100, "full_a.dump.gz"), (200, "full_b.dump.gz")):
        (backups / name).write_bytes(name.encode())
        os.utime(backups / name, (1e9 + age, 1e9 + age))
    # as the app records them: absolute under its own models dir, or relative
    return models, backups, ["/srv/app/models/7", "8.pt", "/srv/app/models/9", "10"]


def test_remote_reading_gives_the_local_labels_and_checksums(tmp_path: Path) -> None:
    models, backups, paths = _tree(tmp_path)
    remote, problem = remote_sums(_run, PurePosixPath(models), paths, PurePosixPath(backups), None)
    assert problem is None
    local = local_sums(models, paths)
    assert {k: v for k, v in remote.items() if k.startswith("model file")} == local
    assert local["model file /srv/app/models/9"] == "absent" == local["model file 10"]
    assert "model file /srv/app/models/7/sub/cfg with space.json" in local
    newest = {k for k in remote if k.startswith("newest backup")}
    assert newest == {"newest backup full_b.dump.gz"}, remote  # the newer by mtime


def test_after_the_drill_the_backup_covered_before_is_read_and_a_lost_one_is_missing(
    tmp_path: Path,
) -> None:
    models, backups, paths = _tree(tmp_path)
    os.utime(backups / "full_a.dump.gz")  # now the newest, but the snapshot covered full_b
    after, _ = remote_sums(_run, PurePosixPath(models), paths, PurePosixPath(backups),
                           "full_b.dump.gz")  # fmt: skip
    assert "newest backup full_b.dump.gz" in after
    (backups / "full_b.dump.gz").unlink()
    (models / "7" / "model.pt").unlink()
    lost, _ = remote_sums(_run, PurePosixPath(models), paths, PurePosixPath(backups),
                          "full_b.dump.gz")  # fmt: skip
    assert not any(k.startswith("newest backup") for k in lost)
    assert "model file /srv/app/models/7/model.pt" not in lost


def test_a_command_that_fails_where_the_app_runs_is_said_not_hidden(tmp_path: Path) -> None:
    def refused(argv: Sequence[str]) -> ExecResult:
        return ExecResult(tuple(argv), 126, "", "container is not running")

    sums, problem = remote_sums(refused, PurePosixPath(tmp_path), ["1"], None, None)
    assert sums == {}
    assert problem and "container is not running" in problem
