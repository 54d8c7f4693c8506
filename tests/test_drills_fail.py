"""The drills fail when they should: a stack that does not recover, a fault with no effect,
a recovery procedure that does nothing.

A drill that can only pass proves nothing. Here the DB-kill drill runs against an app that
is frozen (SIGSTOP) while it should reconnect, and must end `passed=False` with "did not
recover"; a fault that changes nothing must end with FaultNotEffective's message; and the
DB-kill and lock drills, their runbook procedure made a no-op, must fail with "recovery
incomplete": the harness's revert repairs the stack, but that is not a recovery.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chaos.test_db_down import db_sigkill_spec
from opsdrill.drill import RECOVERY_INCOMPLETE, Detector, DrillSpec, run_drill
from opsdrill.drill.detectors import FaultProbes, Probes
from opsdrill.drill.procedure import procedure
from opsdrill.drill.standard import StandardDrill
from opsdrill.faults import DbDown, LockContention
from opsdrill.faults.base import Fault, register
from opsdrill.faults.journal import Journal
from opsdrill.probes.sql import sql_ok
from opsdrill.processes import ProcessRef
from opsdrill.recovery.database import start_postgres, terminate_blocking_session
from opsdrill.targets.local import LocalTarget

pytestmark = pytest.mark.slow


@register
class NoEffect(Fault):
    """A fault that injects nothing: the drill must notice."""

    kind = "test_no_effect"
    recovers_by_itself = True
    recovers_reason = "it breaks nothing"

    def _inject(self) -> None:
        pass

    def _revert(self) -> None:
        pass


def _health(stack: LocalTarget, code: int) -> Detector:
    def check() -> bool:
        try:
            return httpx.get(f"{stack.endpoints.api_url}/health", timeout=1).status_code == code
        except httpx.HTTPError:
            return False

    return Detector(f"/health answers {code}", check, 5)


@pytest.fixture
def frozen_app(stack: LocalTarget) -> Iterator[ProcessRef]:
    """The app's process, thawed (SIGCONT) whatever the test does."""
    ref = ProcessRef.of(stack.service("api").pid() or -1)
    assert ref is not None, "the app must be running"
    try:
        yield ref
    finally:
        ref.signal(signal.SIGCONT)
        stack.wait_healthy(60)


def test_db_drill_fails_when_the_app_does_not_recover(
    stack: LocalTarget, frozen_app: ProcessRef, tmp_path: Path
) -> None:
    def sabotage() -> str:
        frozen_app.signal(signal.SIGSTOP)  # the app will not answer, let alone reconnect
        return "app frozen with SIGSTOP (sabotage)"

    runbook = start_postgres(stack)
    sabotaged = procedure("5.2.2", "start PostgreSQL, then freeze the app",
                          ("start PostgreSQL", runbook.steps[1].action),
                          ("freeze the app", sabotage))  # fmt: skip

    spec = DrillSpec(
        name="db-sigkill-sabotaged",
        title="PostgreSQL killed; the app never comes back",
        runbook="5.2.2",
        severity="P0",
        fault=DbDown(stack, sig="SIGKILL"),
        effect=Detector("PostgreSQL refuses", lambda: not sql_ok(stack.endpoints.dsn), 5),
        detectors=[_health(stack, 503)],
        steady=[_health(stack, 200)],
        recover=sabotaged,
        availability_url=f"{stack.endpoints.api_url}/health",
        recovery_timeout=5,
    )
    result = run_drill(spec, tmp_path)
    assert not result.passed
    assert any("did not recover" in e for e in result.errors), result.errors
    assert result.timeline.first("recovered") is None and result.mttr is None
    assert "FAILED" in result.record_path.read_text()  # type: ignore[union-attr]
    assert sql_ok(stack.endpoints.dsn), "the fault itself is still reverted"
    assert Journal(stack.state_dir).entries() == []


def test_a_fault_with_no_effect_fails_the_drill(stack: LocalTarget, tmp_path: Path) -> None:
    spec = DrillSpec(
        name="no-effect",
        title="A fault that breaks nothing",
        runbook="5.2.2",
        severity="P3",
        fault=NoEffect(stack),
        effect=Detector("PostgreSQL refuses", lambda: not sql_ok(stack.endpoints.dsn), 2),
        detectors=[_health(stack, 503)],
        steady=[_health(stack, 200)],
        availability_url=f"{stack.endpoints.api_url}/health",
    )
    result = run_drill(spec, tmp_path)
    assert not result.passed
    assert any("was injected but 'PostgreSQL refuses' was not seen" in e for e in result.errors)
    assert result.timeline.first("detected") is None, "no detection is polled without an effect"
    assert Journal(stack.state_dir).entries() == []


def test_db_sigkill_drill_fails_when_its_procedure_is_a_no_op(
    stack: LocalTarget, tmp_path: Path
) -> None:
    spec = db_sigkill_spec(StandardDrill(stack, "5.2.2"))
    assert spec.recover is not None and spec.recover.title == "fix 1: start PostgreSQL"
    spec.recover = spec.recover.without_effect()
    spec.detectors, spec.resolved = spec.detectors[:1], []  # no alert wait: not under test
    spec.recovery_timeout = 8
    result = run_drill(spec, tmp_path)
    assert not result.passed
    assert RECOVERY_INCOMPLETE in result.errors, result.errors
    assert result.mttr is None and result.timeline.first("steady_after_revert") is not None
    assert [s.status for s in result.timeline.steps] == ["succeeded"] * 3
    assert RECOVERY_INCOMPLETE in result.record_path.read_text()  # type: ignore[union-attr]
    assert sql_ok(stack.endpoints.dsn), "the revert still started PostgreSQL"


def test_lock_drill_fails_when_terminating_the_blocker_is_a_no_op(
    stack: LocalTarget, tmp_path: Path
) -> None:
    probes, fault_probes = Probes(stack), FaultProbes(stack)
    spec = DrillSpec(
        name="lock-contention-no-op",
        title="Lock on runs held; the blocker is never terminated",
        runbook="5.2.2",
        severity="P1",
        fault=LockContention(stack, table="runs", mode="ACCESS EXCLUSIVE"),
        effect=fault_probes.forecast_hangs(),
        detectors=[fault_probes.lock_waiters()],
        steady=probes.steady(),
        recover=terminate_blocking_session(stack).without_effect(),
        availability_url=f"{stack.endpoints.api_url}/health",
        recovery_timeout=8,
    )
    result = run_drill(spec, tmp_path)
    assert not result.passed
    assert RECOVERY_INCOMPLETE in result.errors, result.errors
    assert Journal(stack.state_dir).entries() == []
