"""Durations, one grammar with explicit units: Prometheus's (`500ms`, `15s`, `1h30m`, `2w`).

Rule files and alert scaling need Prometheus's exact integer milliseconds (`milliseconds`,
`prometheus_spelling`); SLO files are read by people and may say `1.5h` (`seconds` with
`decimals=True`). A bare number is never a duration: its unit would be a guess.
"""

from __future__ import annotations

import re

from opsdrill.errors import UsageError

__all__ = ["PATTERN", "DurationError", "milliseconds", "prometheus_spelling", "seconds"]

_UNIT_MS = {
    "y": 365 * 86_400_000,
    "w": 7 * 86_400_000,
    "d": 86_400_000,
    "h": 3_600_000,
    "m": 60_000,
    "s": 1000,
    "ms": 1,
}
#: a Prometheus duration, for embedding in other patterns (PromQL ranges)
PATTERN = r"(?:\d+(?:ms|[smhdwy]))+"
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|[smhdwy])")
_DECIMAL = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|[smhdwy]))+")


class DurationError(UsageError, ValueError):
    """Not a duration; a ValueError too, so parsers of config files report it in place."""


def _parse_ms(text: str, decimals: bool) -> float:
    text = str(text).strip()
    if not (_DECIMAL if decimals else re.compile(PATTERN)).fullmatch(text):
        example = "500ms, 15s, 1.5h or 1h30m" if decimals else "500ms, 15s, 2m or 1h30m"
        raise DurationError(
            f"{text!r} is not a duration: use Prometheus syntax, a number with its unit "
            f"(ms, s, m, h, d, w, y), such as {example}"
        )
    return sum(float(n) * _UNIT_MS[unit] for n, unit in _PART.findall(text))


def milliseconds(text: str) -> int:
    """Exact milliseconds of a Prometheus duration (`1h30m` -> 5400000)."""
    return int(_parse_ms(text, decimals=False))


def seconds(text: str, *, decimals: bool = False, positive: bool = False) -> float:
    """Seconds of a duration; `decimals` admits `1.5h`, `positive` refuses `0s`."""
    value = _parse_ms(text, decimals) / 1000
    if positive and value <= 0:
        raise DurationError(f"{text!r} is not a duration above zero: use, e.g., 5m")
    return value


def prometheus_spelling(ms: int) -> str:
    """The shortest Prometheus spelling of `ms` milliseconds (`90000` -> `1m30s`)."""
    if ms <= 0:
        return "0s"
    parts = []
    for unit in ("d", "h", "m", "s", "ms"):  # as Prometheus prints them, no weeks
        count, ms = divmod(ms, _UNIT_MS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
