"""The SLO file a pytest session judges against: `--slo FILE` (default: slo.yaml at the root).

Registered from the repository's conftest.py, so `pytest load`, `pytest chaos` and `pytest
checks` read one file. A malformed file ends the session before collection with one sentence
and exit code 2 (usage), not a collection traceback. Tests get it from the `slo_file` fixture;
module-level code (thresholds in a drill's detector) from `selected()`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from opsdrill.exitcodes import ExitCode
from opsdrill.slo.model import SloFile, SloFileError
from opsdrill.slo.parser import load_slo_file

__all__ = ["default_slo_path", "selected", "slo_threshold"]

_KEY = pytest.StashKey[SloFile]()
_selected: list[SloFile] = []  # the running session's file (pytest has no global config)


def default_slo_path(rootpath: Path | None = None) -> Path:
    """slo.yaml beside the tests' rootdir if there is one, else the repository's."""
    if rootpath is not None and (rootpath / "slo.yaml").is_file():
        return rootpath / "slo.yaml"
    return Path(__file__).resolve().parents[2] / "slo.yaml"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("opsdrill").addoption(
        "--slo", default=None, metavar="FILE",
        help="the SLO file the load gate and the drills judge against (default: ./slo.yaml)",
    )  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("--slo", None) or default_slo_path(config.rootpath)
    try:
        slos = load_slo_file(path)
    except SloFileError as exc:
        pytest.exit(f"opsdrill: the SLO file is not usable: {exc}", returncode=ExitCode.USAGE)
    config.stash[_KEY] = slos
    _selected.append(slos)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _KEY in config.stash and _selected:
        _selected.pop()


def selected() -> SloFile:
    """The session's SLO file (outside a session: the repository's slo.yaml)."""
    return _selected[-1] if _selected else load_slo_file(default_slo_path())


def slo_threshold(name: str) -> float:
    """The threshold (seconds) of the latency SLO `name` in the session's SLO file."""
    threshold = selected().get(name).threshold
    if threshold is None:
        raise SloFileError(f"{selected().path}: SLO {name!r} has no threshold (not a latency SLO)")
    return threshold


@pytest.fixture(scope="session")
def slo_file(request: pytest.FixtureRequest) -> SloFile:
    """The SLO file this session judges against (`--slo`)."""
    return request.config.stash[_KEY]
