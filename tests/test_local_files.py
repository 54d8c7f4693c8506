"""`LocalFiles`, the embedded stack's `ServiceFiles`: what the other backends do through a
shell (tests/docker/test_seam.py, tests/host), done on this machine's own filesystem."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from opsdrill.targets.local.files import LocalFiles


def test_glob_lists_what_a_shell_pattern_matches_sorted(tmp_path: Path) -> None:
    (tmp_path / "rules b").mkdir()
    for name in ("rules b/z.yml", "rules b/a.yml", "x.yml", ".hidden.yml"):
        (tmp_path / name).write_text("groups: []\n")
    files = LocalFiles()
    assert files.glob(tmp_path / "rules b" / "*.yml") == [
        str(tmp_path / "rules b" / "a.yml"), str(tmp_path / "rules b" / "z.yml")
    ]  # fmt: skip
    assert files.glob(f"{tmp_path}/*.yml") == [str(tmp_path / "x.yml")], "no dot files, as sh"
    assert files.glob(tmp_path / "x.yml") == [str(tmp_path / "x.yml")]
    assert files.glob(tmp_path / "nothing*") == []


def test_read_bytes_gives_a_binary_file_back_unchanged(tmp_path: Path) -> None:
    data = gzip.compress(b"table,key,row\n" + bytes(range(256)))
    (tmp_path / "a.csv.gz").write_bytes(data)
    assert LocalFiles().read_bytes(tmp_path / "a.csv.gz") == data
    with pytest.raises(FileNotFoundError):
        LocalFiles().read_bytes(tmp_path / "missing")


def test_remove_takes_a_file_or_an_empty_directory_and_never_a_full_one(tmp_path: Path) -> None:
    files = LocalFiles()
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("x")
    with pytest.raises(OSError):
        files.remove(tmp_path / "d")
    files.remove(tmp_path / "d" / "f")
    files.remove(tmp_path / "d")
    assert not (tmp_path / "d").exists()
    files.remove(tmp_path / "d")  # a no-op when not there
