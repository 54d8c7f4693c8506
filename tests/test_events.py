"""Library events reach listeners and pytest hooks; a failing listener is never fatal."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsdrill import events
from opsdrill.targets.local import LocalTarget
from tests.test_fault_journal import FlagFile


def test_fault_events_and_a_failing_listener(tmp_path: Path) -> None:
    seen: list[str] = []

    def broken(**_kw: object) -> None:
        raise RuntimeError("pager is down")

    def record(fault: FlagFile) -> None:
        seen.append(fault.kind)

    for event in ("fault_injected", "fault_reverted"):
        events.subscribe(event, broken)
        events.subscribe(event, record)
    try:
        with FlagFile(LocalTarget(tmp_path), path=str(tmp_path / "flag")):
            assert (tmp_path / "flag").exists()
    finally:
        for event in ("fault_injected", "fault_reverted"):
            events.unsubscribe(event, broken)
            events.unsubscribe(event, record)
    assert seen == ["test_flag_file", "test_flag_file"]
    assert not (tmp_path / "flag").exists(), "a failing listener must not stop the revert"


def test_hooks_fire_in_a_pytest_session(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        CALLS = []
        def pytest_opsdrill_fault_injected(fault): CALLS.append("injected:" + fault.kind)
        def pytest_opsdrill_fault_reverted(fault): CALLS.append("reverted:" + fault.kind)
        def pytest_terminal_summary(terminalreporter):
            terminalreporter.write_line("CALLS=" + ",".join(CALLS))
        """
    )
    pytester.makepyfile(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from pathlib import Path
        from test_fault_journal import FlagFile
        from opsdrill.targets.local import LocalTarget
        def test_it(tmp_path):
            with FlagFile(LocalTarget(tmp_path), path=str(tmp_path / "f")):
                pass
        """
    )
    result = pytester.runpytest_subprocess()
    result.stdout.fnmatch_lines(["CALLS=injected:test_flag_file,reverted:test_flag_file"])
