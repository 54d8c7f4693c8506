"""The app's own /metrics, parsed: figures for thresholds when there is no Prometheus."""

from __future__ import annotations

from collections import defaultdict

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["AppMetrics", "parse"]


class AppMetrics:
    """Samples by name, each a list of (labels, value)."""

    def __init__(self, samples: dict[str, list[tuple[dict[str, str], float]]]) -> None:
        self.samples = samples

    def total(self, name: str, **match: str) -> float:
        """Sum of the samples of `name` whose labels include `match` (regex-free, exact)."""
        return sum(
            v for labels, v in self.samples.get(name, [])
            if all(labels.get(k) == want for k, want in match.items())
        )  # fmt: skip

    def value(self, name: str) -> float | None:
        found = self.samples.get(name)
        return found[0][1] if found else None

    def error_ratio(self) -> float | None:
        """5xx / all of http_requests_total since start, or None before any request."""
        samples = self.samples.get("http_requests_total", [])
        total = sum(v for _, v in samples)
        errors = sum(v for labels, v in samples if labels.get("status", "").startswith("5"))
        return errors / total if total else None

    def p95_seconds(self) -> float | None:
        """p95 of http_request_duration_seconds since start, from the cumulative buckets."""
        buckets: dict[float, float] = defaultdict(float)
        for labels, v in self.samples.get("http_request_duration_seconds_bucket", []):
            buckets[float(labels["le"])] += v
        if not buckets or not buckets[float("inf")]:
            return None
        rank = 0.95 * buckets[float("inf")]
        return next(le for le in sorted(buckets) if buckets[le] >= rank)


def parse(text: str) -> AppMetrics:
    samples: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[s.name].append((dict(s.labels), float(s.value)))
    return AppMetrics(dict(samples))
