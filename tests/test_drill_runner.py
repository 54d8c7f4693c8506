"""The drill runner's order and verdicts, with an in-process fault (no stack needed).

The fault flips a flag the detectors read; the procedures repair it or not. What is under
test is the harness's judgement: recovery by the procedure before the revert, never by it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

import pytest

from opsdrill.drill import RECOVERY_INCOMPLETE, Detector, DrillSpec, run_drill
from opsdrill.drill.detector import wait_all
from opsdrill.drill.incident import Incident
from opsdrill.drill.procedure import Procedure, ProcedureFailed, procedure
from opsdrill.faults.base import Fault, register

BROKEN: dict[str, bool] = {"flag": False}


class _Home:
    """Just enough of a target for a fault that touches nothing: where to journal."""

    def __init__(self, path: Path) -> None:
        self.journal_dir = path


@register
class FlagFault(Fault):
    """Sets a flag in this process; reverting clears it."""

    kind = "test_flag"

    def _inject(self) -> None:
        BROKEN["flag"] = True

    def _revert(self) -> None:
        BROKEN["flag"] = False


@register
class TransientFlag(FlagFault):
    """Sets the flag, which the stack is supposed to ride out."""

    kind = "test_transient_flag"
    recovers_by_itself: ClassVar[bool] = True
    recovers_reason: ClassVar[str] = "the flag is harmless by design"


def _spec(tmp_path: Path, recover: Procedure | None, fault: type[Fault] = FlagFault,
          **kw: Any) -> DrillSpec:  # fmt: skip
    return DrillSpec(
        name="flag",
        title="a flag is set",
        runbook="5.2.2",
        severity="P3",
        fault=fault(_Home(tmp_path)),  # type: ignore[arg-type]
        effect=Detector("flag set", lambda: BROKEN["flag"], 2),
        detectors=[Detector("flag seen", lambda: BROKEN["flag"], 2)],
        steady=[Detector("flag clear", lambda: not BROKEN["flag"], 1)],
        recover=recover,
        availability_url="http://127.0.0.1:9/health",  # nothing listens: not judged here
        recovery_timeout=kw.pop("recovery_timeout", 1.0),
        **kw,
    )


def _clear() -> str:
    BROKEN["flag"] = False
    return "flag cleared"


FIX = procedure("5.2.2", "fix: clear the flag", ("diagnose", lambda: "flag is set"),
                ("clear the flag", _clear))  # fmt: skip


def test_a_procedure_that_recovers_passes_before_the_revert(tmp_path: Path) -> None:
    result = run_drill(_spec(tmp_path, FIX), tmp_path)
    assert result.passed, result.errors
    tl = result.timeline
    names = [e.name for e in tl.events]
    assert names.index("recovered") < names.index("reverting"), names
    assert result.recovered_by == "§5.2.2 fix: clear the flag"
    assert [(s.step, s.status) for s in tl.steps] == [
        ("diagnose", "succeeded"), ("clear the flag", "succeeded")]  # fmt: skip
    assert all(s.duration is not None and s.duration >= 0 for s in tl.steps)
    assert result.mttr is not None and result.mttr >= tl.steps[-1].end - tl.first("injecting").t  # type: ignore[operator, union-attr]
    record = result.record_path.read_text()  # type: ignore[union-attr]
    assert "| procedure_step |" in record and "clear the flag" in record


def test_a_no_op_procedure_fails_with_recovery_incomplete(tmp_path: Path) -> None:
    result = run_drill(_spec(tmp_path, FIX.without_effect()), tmp_path)
    assert not result.passed
    assert RECOVERY_INCOMPLETE in result.errors, result.errors
    assert result.mttr is None and result.timeline.first("recovered") is None
    assert not BROKEN["flag"], "the harness still reverted the fault"


def test_a_failing_step_stops_the_procedure_and_fails_the_drill(tmp_path: Path) -> None:
    def boom() -> str:
        raise RuntimeError("no such service")

    broken = procedure("5.2.2", "fix", ("start it", boom), ("clear the flag", _clear))
    result = run_drill(_spec(tmp_path, broken), tmp_path)
    assert not result.passed
    assert any("step 'start it' failed: no such service" in e for e in result.errors)
    assert [s.status for s in result.timeline.steps] == ["failed"]


def test_a_drill_without_procedure_is_refused_unless_the_fault_recovers_by_itself(
    tmp_path: Path,
) -> None:
    result = run_drill(_spec(tmp_path, None), tmp_path)
    assert not result.passed and "names no recovery procedure" in result.errors[0]
    assert result.timeline.first("injecting") is None, "nothing is injected for a bad spec"


def test_a_transient_fault_must_be_ridden_out_while_in_place(tmp_path: Path) -> None:
    result = run_drill(_spec(tmp_path, None, TransientFlag), tmp_path)
    assert RECOVERY_INCOMPLETE in result.errors, "the flag stays set until the revert"
    ridden = _spec(tmp_path, None, TransientFlag)
    ridden.steady = [Detector("always fine", lambda: True, 1)]
    result = run_drill(ridden, tmp_path)
    assert result.passed, result.errors
    assert result.recovered_by == "the stack itself (the flag is harmless by design)"


def test_detectors_are_polled_concurrently_so_a_slow_one_delays_no_other() -> None:
    def slow() -> bool:
        time.sleep(1.0)
        return True

    t0 = time.monotonic()
    fast, late = wait_all([Detector("fast", lambda: True, 2), Detector("slow", slow, 2)],
                          time.monotonic)  # fmt: skip
    assert fast.t is not None and fast.t - t0 < 0.5, "the fast detector waited for the slow"
    assert late.t is not None and late.t - t0 >= 1.0


def test_procedure_failure_names_procedure_and_step() -> None:
    with pytest.raises(ProcedureFailed, match=r"§5.2.2 fix: step 'x' failed: bad"):
        procedure("5.2.2", "fix", ("x", lambda: (_ for _ in ()).throw(ValueError("bad")))).run()


@register
class SlowFlag(FlagFault):
    """Sets the flag, then takes 0.3 s more to return, as a stop or restart would."""

    kind = "test_slow_flag"

    def _inject(self) -> None:
        super()._inject()
        time.sleep(0.3)  # the injection's own duration, which the MTTD must not count


def test_mttd_excludes_the_injection_and_keeps_the_alert_apart(tmp_path: Path) -> None:
    set_at: list[float] = []

    def alert_fires() -> bool:  # an alert with a `for:` of 0.5 s after the flag
        if BROKEN["flag"] and not set_at:
            set_at.append(time.monotonic())
        return bool(set_at) and time.monotonic() - set_at[0] >= 0.5

    def slow_effect() -> bool:
        time.sleep(0.4)  # a slow effect probe must not delay the detectors' stamps
        return BROKEN["flag"]

    spec = _spec(tmp_path, FIX, SlowFlag)
    spec.effect = Detector("flag set (slowly)", slow_effect, 3)
    spec.detectors = [
        Detector("flag seen", lambda: BROKEN["flag"], 2),
        Detector("alert FlagUp firing", alert_fires, 3, kind="alert",
                 note="scaled ×60", production_offset=59.0),
    ]  # fmt: skip
    result = run_drill(spec, tmp_path)
    assert result.passed, result.errors
    assert result.injection_seconds is not None and result.injection_seconds >= 0.3
    assert result.mttd_probe is not None and result.mttd_probe < 0.2, result.mttd_probe
    assert result.mttd == result.mttd_probe, "MTTD is the first of the detectors"
    assert result.mttd_alert is not None and 0.15 <= result.mttd_alert < 1.0, result.mttd_alert
    assert result.mttd_alert_production == round(result.mttd_alert + 59.0, 3)
    tl = result.timeline
    assert tl.first("detected", "flag seen").t < tl.first("effect_seen").t  # type: ignore[union-attr]
    written = Incident.read(result.record_path.with_suffix(".json"))  # type: ignore[union-attr]
    assert written == result.incident(), "the JSON read back is not what the runner wrote"
    assert written.mttd_alert_seconds == result.mttd_alert
    assert written.mttd_probe_seconds == result.mttd_probe
    assert written.injection_seconds == result.injection_seconds
    record = result.record_path.read_text()  # type: ignore[union-attr]
    assert "| MTTD by the alert, rule windows at production scale |" in record
    assert "| alert FlagUp firing | alert |" in record and "scaled ×60" in record


def test_scaled_for_durations_are_read_from_shortened_json(tmp_path: Path) -> None:
    from opsdrill.drill.alert_scale import alert_scaling

    path = tmp_path / "monitoring" / "prometheus" / "shortened.json"
    path.parent.mkdir(parents=True)
    path.write_text(
        '[{"file": "alerts.yml", "alert": "DatabaseDown", "field": "for", "before": "1m", '
        '"after": "1s"}, {"file": "alerts.yml", "alert": "HighErrorRate", "field": "range", '
        '"before": "5m", "after": "5s"}]'
    )
    scaled = alert_scaling(tmp_path)
    assert list(scaled) == ["DatabaseDown"]
    assert scaled["DatabaseDown"].offset == 59.0 and scaled["DatabaseDown"].factor == 60
    assert "`for:` 1s here, 1m in production" in scaled["DatabaseDown"].note()
    assert alert_scaling(tmp_path / "nowhere") == {} and alert_scaling(None) == {}
