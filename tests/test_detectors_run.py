"""Every standard detector's question can be asked: its check runs against a target where
nothing answers and fails only for that (no answer, a refused connection), never with a
programming error. A detector treats any exception as "not seen", so a broken one (a name it
does not have) would otherwise fail its drill with "was not seen within 10 s" and nothing
to say why; this is the test that says why."""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import pytest

from opsdrill.drill.detector import Detector
from opsdrill.drill.detectors import FaultProbes, Probes
from opsdrill.targets.fake import FakeTarget

#: arguments for the builders that need some
ARGS = {"alert": ("ServiceDown",), "health_is": (200,), "delivered": ("ServiceDown",),
        "delivery_cycle": ("ServiceDown",), "alert_cycle": ("ServiceDown",),
        "request_hangs": ("/health",), "slower_than": (0.001,),
        "not_slower_than": (10.0,)}  # fmt: skip


def _detectors(probes: object) -> Iterator[tuple[str, Detector]]:
    for name, _member in inspect.getmembers(type(probes), inspect.isfunction):
        if name.startswith("_") or name in ("forecast_latency",):
            continue
        got = getattr(probes, name)(*ARGS.get(name, ()))
        items = got if isinstance(got, list | tuple) else [got]
        for item in items:
            for d in item if isinstance(item, list) else [item]:
                if isinstance(d, Detector):
                    yield f"{type(probes).__name__}.{name}", d


@pytest.mark.parametrize("kind", [Probes, FaultProbes])
def test_every_detector_asks_without_a_programming_error(kind: type) -> None:
    # with an alert receiver and Prometheus named, so no detector is skipped for want of one
    target = FakeTarget(services=("db", "api", "alert_sink"), prometheus_url="http://127.0.0.1:9")
    found = list(_detectors(kind(target)))
    assert len(found) >= (8 if kind is Probes else 9), [n for n, _ in found]
    for name, detector in found:
        if detector.skipped:
            continue
        try:
            detector.check()
        except (AttributeError, NameError, TypeError) as exc:
            pytest.fail(f"{name}: {detector.name!r} cannot be asked: {exc!r}")
        except Exception:  # nothing answers at this target: the check says so, as it should
            pass
