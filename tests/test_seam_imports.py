"""The Target seam holds: outside `opsdrill/targets/` no code knows which backend it drives.

Every .py under opsdrill/ (but opsdrill/targets/), chaos/, checks/ and load/ is parsed with
`ast`; the test fails naming file:line for an import of a backend module or class (the local,
docker and host targets and their parts), an `isinstance` on one, or a target's `state_dir`
(an attribute of something named like a target, or `getattr(..., "state_dir")`).

Backend modules are every module of opsdrill/targets/ but the target-neutral ones below, so a
new backend is covered the day it is added; its classes are read from its source.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ROOT / "opsdrill" / "targets"
SCANNED = ("opsdrill", "chaos", "checks", "load")
#: modules of opsdrill.targets that name no backend: the contract and backend-free helpers
NEUTRAL = frozenset(
    {
        "opsdrill.targets",
        "opsdrill.targets.base",
        "opsdrill.targets.model",
        "opsdrill.targets.files",
        "opsdrill.targets.drill_parts",
        "opsdrill.targets.first_data",  # bootstrap over Target.ops and the API
        "opsdrill.targets.postgres",  # PostgreSQL's binaries on this machine (doctest clones)
        "opsdrill.targets.service_process",  # helper processes over Target.exec
    }
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def backend_modules() -> dict[str, Path]:
    """Every module under opsdrill/targets/ that is not NEUTRAL: a backend or its parts."""
    found = {_module_name(p): p for p in TARGETS.rglob("*.py")}
    return {name: path for name, path in found.items() if name not in NEUTRAL}


def backend_classes(modules: dict[str, Path]) -> frozenset[str]:
    """The classes the backend modules define (LocalTarget, DockerTarget, WorkerCgroup, ...)."""
    names = set()
    for path in modules.values():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                names.add(node.name)
    return frozenset(names)


def _is_backend(module: str, backends: frozenset[str]) -> bool:
    return any(module == b or module.startswith(b + ".") for b in backends)


def _names_target(node: ast.expr) -> bool:
    """`target`, `self.target`, `gpu_target`, `stack`: an expression naming a target."""
    name = node.id if isinstance(node, ast.Name) else getattr(node, "attr", "")
    return "target" in name.lower() or name == "stack"


def _type_names(node: ast.expr) -> Iterator[str]:
    """Class names in isinstance's second argument (a name, `mod.Name`, or a tuple)."""
    if isinstance(node, ast.Tuple):
        for elt in node.elts:
            yield from _type_names(elt)
    elif isinstance(node, ast.Name):
        yield node.id
    elif isinstance(node, ast.Attribute):
        yield node.attr


def offenses(
    source: str, where: str, backends: frozenset[str], classes: frozenset[str]
) -> list[str]:
    """Each place `source` reaches past the seam, as 'file:line: what'."""
    found = []
    for node in ast.walk(ast.parse(source, where)):
        line = f"{where}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            found += [
                f"{line}: imports backend module {a.name}"
                for a in node.names
                if _is_backend(a.name, backends)
            ]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if _is_backend(node.module, backends):
                found.append(f"{line}: imports from backend module {node.module}")
                continue
            for alias in node.names:
                if _is_backend(f"{node.module}.{alias.name}", backends):
                    found.append(f"{line}: imports backend module {node.module}.{alias.name}")
                elif alias.name in classes:
                    found.append(f"{line}: imports backend class {alias.name}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            args = node.args
            if node.func.id in ("isinstance", "issubclass") and len(args) == 2:
                found += [
                    f"{line}: {node.func.id} on backend class {name}"
                    for name in _type_names(args[1])
                    if name in classes
                ]
            if (
                node.func.id in ("getattr", "hasattr", "setattr")
                and len(args) >= 2
                and isinstance(args[1], ast.Constant)
                and args[1].value == "state_dir"
            ):
                found.append(f"{line}: {node.func.id}(..., 'state_dir') on a target")
        elif (
            isinstance(node, ast.Attribute)
            and node.attr == "state_dir"
            and _names_target(node.value)
        ):
            found.append(f"{line}: a target's state_dir (ask the Target seam instead)")
    return found


def scanned_files() -> list[Path]:
    files = [p for d in SCANNED for p in (ROOT / d).rglob("*.py")]
    return sorted(p for p in files if not p.is_relative_to(TARGETS))


@pytest.fixture(scope="module")
def rules() -> tuple[frozenset[str], frozenset[str]]:
    modules = backend_modules()
    return frozenset(modules), backend_classes(modules)


def test_backends_and_their_classes_are_found(rules: tuple[frozenset[str], frozenset[str]]):
    backends, classes = rules
    assert {"opsdrill.targets.local", "opsdrill.targets.docker.target"} <= backends
    assert {"LocalTarget", "DockerTarget", "FileTarget", "WorkerCgroup"} <= classes
    assert "Target" not in classes and "Service" not in classes


def test_nothing_outside_the_targets_package_reaches_past_the_seam(
    rules: tuple[frozenset[str], frozenset[str]],
) -> None:
    backends, classes = rules
    files = scanned_files()
    assert len(files) > 50, "the scan must see the suites and the package"
    found = [
        hit
        for path in files
        for hit in offenses(path.read_text(), str(path.relative_to(ROOT)), backends, classes)
    ]
    assert not found, "code outside opsdrill/targets/ names a backend:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("source", "needle"),
    [
        ("from opsdrill.targets.local import LocalTarget\n", "x.py:1: imports from backend"),
        ("import opsdrill.targets.docker.target as d\n", "x.py:1: imports backend module"),
        ("from opsdrill.targets import local\n", "imports backend module opsdrill.targets.local"),
        ("from opsdrill.targets.local.lifecycle import LocalTarget\n", "imports from backend"),
        ("from somewhere import WorkerCgroup\n", "imports backend class WorkerCgroup"),
        ("def f(t, m):\n    return isinstance(t, (int, m.LocalTarget))\n", "x.py:2: isinstance"),
        ("def f(target):\n    return target.state_dir\n", "x.py:2: a target's state_dir"),
        ("def f(self):\n    return self.target.state_dir\n", "a target's state_dir"),
        ("def f(t):\n    return getattr(t, 'state_dir', None)\n", "getattr(..., 'state_dir')"),
    ],
)
def test_each_way_past_the_seam_is_caught_with_file_and_line(
    rules: tuple[frozenset[str], frozenset[str]], source: str, needle: str
) -> None:
    backends, classes = rules
    found = offenses(source, "x.py", backends | {"opsdrill.targets.local"}, classes)
    assert any(needle in hit for hit in found), found


def test_the_seam_itself_and_an_argparse_state_dir_are_not_offenses(
    rules: tuple[frozenset[str], frozenset[str]],
) -> None:
    backends, classes = rules
    clean = (
        "from opsdrill.targets import parse_spec\n"
        "from opsdrill.targets.base import Target\n"
        "def f(target: Target, args):\n"
        "    return target.journal_dir, target.state_home(), args.state_dir\n"
    )
    assert offenses(clean, "x.py", backends, classes) == []


def test_a_bad_module_on_disk_fails_the_scan(
    tmp_path: Path, rules: tuple[frozenset[str], frozenset[str]]
) -> None:
    """The scan as the real test runs it, over a file that breaks the rule."""
    backends, classes = rules
    bad = tmp_path / "drill.py"
    bad.write_text("import os\n\nfrom opsdrill.targets.local import LocalTarget\n")
    assert offenses(bad.read_text(), str(bad), backends, classes) == [
        f"{bad}:3: imports from backend module opsdrill.targets.local"
    ]
