"""What a suite's JUnit XML says happened: counts, failed tests, and every skip with its reason.

The game day judges a suite from its JUnit file rather than from pytest's exit code alone,
because pytest exits 0 when tests skip: the skips (and xfails, which show nothing either) are
read back here with pytest's own message, under the test's node id.
"""

from __future__ import annotations

import ast
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["JunitResults", "SkippedTest", "node_id", "read_junit"]


@dataclass(frozen=True)
class SkippedTest:
    test: str  # node id, e.g. chaos/test_gpu_oom.py::test_cuda_oom_fails_the_run_and_is_recovered
    message: str  # pytest's reason, e.g. "torch sees no CUDA device here …"


@dataclass
class JunitResults:
    tests: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)
    skips: list[SkippedTest] = field(default_factory=list)


def node_id(classname: str, name: str) -> str:
    """pytest's node id back from JUnit's `classname` (the id's path and classes, dotted).

    Modules are the dotted parts before the first that starts with a capital letter (a test
    class: pytest collects `Test*`): `chaos.test_x.TestY` and `test_z` give
    `chaos/test_x.py::TestY::test_z`.
    """
    parts = classname.split(".") if classname else []
    split = next((i for i, p in enumerate(parts) if p[:1].isupper()), len(parts))
    module = "/".join(parts[:split])
    return "::".join([f"{module}.py" if module else "", *parts[split:], name]).lstrip(":")


def read_junit(path: Path) -> JunitResults:
    """Counts, failed ids and skips of one JUnit file (pytest's xunit2 or xunit1)."""
    out = JunitResults()
    root = ET.parse(path).getroot()
    for suite in root.iter("testsuite"):
        out.tests += int(suite.get("tests", 0))
        out.failures += int(suite.get("failures", 0))
        out.errors += int(suite.get("errors", 0))
        out.skipped += int(suite.get("skipped", 0))
    for case in root.iter("testcase"):
        classname, name = case.get("classname", ""), case.get("name", "")
        # a module skipped whole at collection: no classname, the dotted module as its name
        test = node_id(classname, name) if classname else node_id(name, "").rstrip(":")
        if case.find("failure") is not None or case.find("error") is not None:
            out.failed.append(test)
        elif (skipped := case.find("skipped")) is not None:
            out.skips.append(SkippedTest(test, _skip_message(skipped)))
    return out


def _skip_message(skipped: ET.Element) -> str:
    """pytest's reason; for a collection skip it is only in the text, as a (path, line,
    'Skipped: reason') tuple."""
    message = skipped.get("message") or ""
    if skipped.get("type") == "pytest.xfail":
        return f"expected to fail (xfail): {message}"
    if message == "collection skipped":
        try:
            reason = str(ast.literal_eval((skipped.text or "").strip())[2])
        except (ValueError, SyntaxError, IndexError, TypeError):
            return message
        return f"module skipped at collection: {reason.removeprefix('Skipped: ')}"
    return message or (skipped.text or "").strip()
