"""HDR histograms of response times, in microseconds: exact to 3 significant digits, mergeable.

Locust's own statistics round response times to 10 ms between 100 ms and 1 s, which blurs a
500 ms objective; an HDR histogram keeps every sample to 0.1 % and adds losslessly, so
percentiles merged from many workers equal those of one histogram fed every raw sample.
"""

from __future__ import annotations

from collections.abc import Iterable

from hdrh.histogram import HdrHistogram

__all__ = ["HIGHEST_US", "count_above", "decode", "encode", "merge", "new_histogram"]

#: one hour: anything slower is recorded as one hour
HIGHEST_US = 3_600_000_000
SIGNIFICANT_DIGITS = 3


def new_histogram() -> HdrHistogram:
    """An empty histogram for latencies from 1 µs to one hour."""
    return HdrHistogram(1, HIGHEST_US, SIGNIFICANT_DIGITS)


def record(hist: HdrHistogram, seconds: float) -> None:
    """Record one latency given in seconds (clamped to 1 µs .. one hour)."""
    hist.record_value(min(max(int(seconds * 1_000_000), 1), HIGHEST_US))


def encode(hist: HdrHistogram) -> str:
    """The compressed base64 form Locust messages can carry."""
    return hist.encode().decode("ascii")


def decode(text: str) -> HdrHistogram:
    return HdrHistogram.decode(text.encode("ascii"))


def merge(hists: Iterable[HdrHistogram]) -> HdrHistogram:
    """One histogram holding every sample of `hists`."""
    out = new_histogram()
    for h in hists:
        if h.get_total_count():
            out.add(h)
    return out


def count_above(hist: HdrHistogram, seconds: float) -> int:
    """Samples slower than `seconds` (at HDR resolution)."""
    limit = int(seconds * 1_000_000)
    return sum(
        item.count_at_value_iterated_to
        for item in hist.get_recorded_iterator()
        if hist.get_lowest_equivalent_value(item.value_iterated_to) > limit
    )
