"""The runbook's metric thresholds (§4.1.2) as data, and the verdict for a live figure.

The runbook's table leaves a gap between "normal" and "warning" (CPU normal below 70 %,
warning above 80 %); a figure in that gap is `elevated`: noted, not failed. Rows below the
runbook's table are opsdrill's own limits for figures the runbook names without a threshold
(errors per day, queue age, ...); each says where it comes from.

`OPSDRILL_THRESHOLDS` (JSON, `{"cpu": [warning, critical]}`) overrides rows for one run, e.g. a
shared CI machine whose CPU is not the stack's.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from enum import StrEnum

__all__ = ["RUNBOOK_ROWS", "THRESHOLDS", "Level", "Threshold", "Verdict", "evaluate", "limits"]

ENV = "OPSDRILL_THRESHOLDS"


class Level(StrEnum):
    NORMAL = "normal"
    ELEVATED = "elevated"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def fails(self) -> bool:
        return self in (Level.WARNING, Level.CRITICAL)


@dataclass(frozen=True)
class Threshold:
    """One row: below `normal_below` is normal, above `warning_above` warning, and so on."""

    key: str
    label: str
    unit: str
    normal_below: float
    warning_above: float
    critical_above: float
    fix: str
    source: str = "runbook §4.1.2"

    def show(self, value: float) -> str:
        if self.unit == "%":
            return f"{value:.1f} %"
        if self.unit == "s":
            return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
        return f"{value:g}{' ' + self.unit if self.unit else ''}"


_ROWS = (
    Threshold("cpu", "CPU usage", "%", 70, 80, 95,
              "find the busy processes (top) and lower MAX_PARALLEL_RUNS (runbook 6.2.1)"),
    Threshold("memory", "memory usage", "%", 75, 85, 95,
              "find the largest processes and running runs (runbook 5.2.3)"),
    Threshold("disk", "disk usage", "%", 80, 85, 95,
              "delete old logs and models, VACUUM FULL (runbook 5.2.4)"),
    Threshold("api_p95", "API response time p95", "s", 0.5, 1.0, 2.0,
              "look for slow statements and missing indexes (runbook 5.2.5)"),
    Threshold("error_rate", "API error rate", "%", 1, 5, 10,
              "read the error log and ERROR rows of system_logs (runbook 3.1.2, 5.2.2)"),
    Threshold("active_runs", "active runs", "runs", 50, 80, 100,
              "check for stuck runs and MAX_PARALLEL_RUNS (runbook 3.1.3, 6.2.1)"),
    Threshold("db_connections", "DB connections", "connections", 100, 150, 180,
              "terminate idle sessions, check the pool (runbook 5.2.2, 6.1.2)"),
)  # fmt: skip
_OWN = (
    Threshold("errors_24h", "ERROR rows in system_logs, 24 h", "rows", 20, 50, 200,
              "group them by exception type (runbook 4.3) and fix the top one",
              "opsdrill: the runbook counts them (3.1.1 #6) without a limit"),
    Threshold("errors_1h", "ERROR/CRITICAL rows in system_logs, 1 h", "rows", 5, 10, 50,
              "read the newest rows and the error log (runbook 3.1.2)",
              "opsdrill: the runbook lists them (3.1.2) without a limit"),
    Threshold("errors_per_type_24h", "ERROR rows of one exception type, 24 h", "rows",
              10, 20, 100, "fix the failing code path named by the exception type",
              "opsdrill: the runbook groups them (4.3) without a limit"),
    Threshold("queued_runs", "queued runs", "runs", 25, 50, 100,
              "check for stuck running runs; raise MAX_PARALLEL_RUNS if it is real load",
              "runbook §4.2 QueueBacklog (> 50)"),
    Threshold("oldest_queued_age", "age of the oldest queued run", "s", 300, 900, 3600,
              "check the executor is claiming runs (runbook 3.1.3)",
              "runbook §4.2 QueueBacklog's for: 15m"),
    Threshold("run_duration", "longest running run", "s", 3600, 7200, 86400,
              "check the run's worker; cancel it if it is stuck (runbook 3.1.3)",
              "runbook §4.2 LongRunningJob (> 7200 s) and §3.2.1 (> 24 h)"),
    Threshold("backup_age", "age of the newest backup", "s", 86400, 86400, 172800,
              "run `python -m nf_auto_runner.ops backup` and check the backup schedule",
              "runbook §3.1.1 #8 (< 24 h)"),
    Threshold("dead_ratio", "dead tuple ratio of a table with > 1000 dead tuples", "%",
              10, 20, 50, "VACUUM ANALYZE the table; check autovacuum is on",
              "opsdrill: the runbook reports the ratio (3.2.1) without a limit"),
    Threshold("failed_logins_per_day", "failed logins in one day", "logins", 5, 20, 100,
              "look for a brute-force source; rotate the credential if it leaked",
              "opsdrill: the runbook counts them (3.3.2) without a limit"),
)  # fmt: skip

RUNBOOK_ROWS: tuple[str, ...] = tuple(t.key for t in _ROWS)
THRESHOLDS: dict[str, Threshold] = {t.key: t for t in (*_ROWS, *_OWN)}


def limits(key: str) -> Threshold:
    """The row for `key`, with any override from $OPSDRILL_THRESHOLDS applied."""
    row = THRESHOLDS[key]
    raw = os.environ.get(ENV)
    if raw:
        override = json.loads(raw).get(key)
        if override is not None:
            warning, critical = (float(v) for v in override)
            row = replace(row, warning_above=warning, critical_above=critical,
                          normal_below=min(row.normal_below, warning),
                          source=f"{row.source}, overridden by ${ENV}")  # fmt: skip
    return row


@dataclass(frozen=True)
class Verdict:
    threshold: Threshold
    value: float
    level: Level
    subject: str

    @property
    def message(self) -> str:
        """One sentence: what, the figure, the level, the limits, and the fix."""
        t = self.threshold
        limits_text = (
            f"warning above {t.show(t.warning_above)}, critical above {t.show(t.critical_above)}"
        )
        head = f"{t.label} of {self.subject}" if self.subject else t.label
        return (
            f"{self.level.value.upper()}: {head} is {t.show(self.value)} "
            f"(expected below {t.show(t.normal_below)}; {limits_text}; {t.source}); "
            f"fix: {t.fix}"
        )


def evaluate(key: str, value: float, subject: str = "") -> Verdict:
    """Classify `value` against row `key`: normal, elevated, warning or critical."""
    t = limits(key)
    if value > t.critical_above:
        level = Level.CRITICAL
    elif value > t.warning_above:
        level = Level.WARNING
    elif value >= t.normal_below:
        level = Level.ELEVATED
    else:
        level = Level.NORMAL
    return Verdict(t, value, level, subject)
