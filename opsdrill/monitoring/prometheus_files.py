"""Prometheus and Alertmanager files for a stack on one machine, derived from the production ones.

The reference stack ships one set of files in `system/prometheus/` (prometheus.yml, alerts.yml,
alertmanager.yml) for production and Compose. The embedded target runs those same files with
loopback targets and short intervals; the functions here produce that variant from the
production text instead of keeping a second copy, so the two cannot drift. They are pure: text
in, text out; writing files and starting processes is the caller's business.

`shorten_rules` scales every `for:` and range window by a factor, so a drill sees an alert fire
in seconds rather than minutes, and says what it changed so a report can show it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from opsdrill.durations import PATTERN, milliseconds, prometheus_spelling
from opsdrill.errors import MissingDependency, UsageError
from opsdrill.runbook.alert_rules import AGE_THRESHOLD

#: where a stack's state directory records every `for:` and window its rules run shorter than
#: production's (read back by `drill.alert_scale` for the production-scale MTTD)
SHORTENED = Path("monitoring") / "prometheus" / "shortened.json"

__all__ = [
    "Shortening",
    "alertmanager_config_path",
    "production_rules_text",
    "prometheus_config_path",
    "prometheus_dir",
    "render_alertmanager_config",
    "render_prometheus_config",
    "rules_path",
    "shorten_rules",
]

APP_JOB = "ts-forecast-app"
POSTGRES_JOB = "postgres"
NODE_JOB = "node"

_RANGE = re.compile(rf"\[\s*({PATTERN})\s*(?::\s*({PATTERN})?\s*)?\]")
_STRING_LITERAL = re.compile(r"(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|`[^`]*`)")

#: Not package data: the files live in the repository, next to the rest of the reference stack.
_SYSTEM_DIR = Path(__file__).resolve().parents[2] / "system" / "prometheus"


@dataclass(frozen=True)
class Shortening:
    """One duration `shorten_rules` changed: `for`, a `range` window, a subquery `resolution`
    or an `age` threshold in seconds."""

    alert: str
    field: str
    before: str
    after: str

    def __str__(self) -> str:
        return f"{self.alert}: {self.field} {self.before} → {self.after}"


def prometheus_dir() -> Path:
    """The repository's `system/prometheus` (not package data, so found from the repo root)."""
    path = _SYSTEM_DIR
    if not (path / "prometheus.yml").is_file():
        raise MissingDependency(
            f"the reference stack's Prometheus files are missing: expected {path}/prometheus.yml; "
            "run opsdrill from a checkout of the repository (pip install -e .)"
        )
    return path


def prometheus_config_path() -> Path:
    """The production prometheus.yml."""
    return prometheus_dir() / "prometheus.yml"


def rules_path() -> Path:
    """The production alert rules (alerts.yml)."""
    return prometheus_dir() / "alerts.yml"


#: every rule file production loads: the runbook's alerts and the SLO burn-rate rules
RULE_FILES = ("alerts.yml", "slo_rules.yml")


def rules_text(name: str) -> str:
    """The text of one production rule file (see RULE_FILES)."""
    return (prometheus_dir() / name).read_text()


def production_rules_text() -> str:
    """The text of the production alerts.yml, the input `shorten_rules` expects."""
    return rules_path().read_text(encoding="utf-8")


def alertmanager_config_path() -> Path:
    """The production alertmanager.yml."""
    return prometheus_dir() / "alertmanager.yml"


def render_prometheus_config(
    *,
    app_url: str,
    postgres_exporter_url: str | None,
    node_exporter_url: str | None,
    alertmanager_url: str | None,
    rules_path: Path,
    scrape_interval: str = "1s",
    evaluation_interval: str = "1s",
    worker_node_url: str | None = None,
) -> str:
    """The production prometheus.yml with these targets and intervals; a `None` drops that part.

    Jobs, external labels and everything else stay as in production. A job in the production
    file that has no URL parameter here is an error rather than silently dropped: the embedded
    stack would otherwise stop watching something production watches.
    """
    config = _load_yaml(prometheus_config_path())
    interval_ms = milliseconds(scrape_interval)
    milliseconds(evaluation_interval)
    glob = config.setdefault("global", {})
    timeout_ms = min(milliseconds(glob.get("scrape_timeout", "10s")), interval_ms)
    glob.update(
        scrape_interval=scrape_interval,
        evaluation_interval=evaluation_interval,
        scrape_timeout=prometheus_spelling(timeout_ms),
    )
    config["rule_files"] = [str(rules_path)]
    if alertmanager_url is None:
        config.pop("alerting", None)
    else:
        scheme, hostport, path = _split_url(alertmanager_url, "alertmanager_url")
        manager: dict[str, Any] = {"scheme": scheme, "static_configs": [{"targets": [hostport]}]}
        if path:
            manager["path_prefix"] = path
        config["alerting"] = {"alertmanagers": [manager]}
    urls = {APP_JOB: app_url, POSTGRES_JOB: postgres_exporter_url, NODE_JOB: node_exporter_url}
    config["scrape_configs"] = [
        _retarget(job, urls)
        for job in config.get("scrape_configs", [])
        if urls.get(job["job_name"], "") is not None
    ]
    for job in config["scrape_configs"]:  # the workers' cgroup, seen as a node (cgroup_exporter)
        if job["job_name"] == NODE_JOB and worker_node_url is not None:
            hostport = _split_url(worker_node_url, "worker_node_url")[1]
            job["static_configs"].append({"targets": [hostport], "labels": {"node": "workers"}})
    if not any(job["job_name"] == APP_JOB for job in config["scrape_configs"]):
        raise UsageError(f"{prometheus_config_path()} has no job {APP_JOB!r}: restore it")
    return _header("prometheus.yml") + _dump(config)


def shorten_rules(
    rules_yaml: str, factor: float, *, minimum: str = "1s"
) -> tuple[str, list[Shortening]]:
    """Scale every `for:`, range window, group `interval` and age threshold (`time() - t > N`)
    by `factor` (never below `minimum`; an age never below 1 s).

    With factor 1/60 a `for: 2m` becomes `2s` and `rate(x[5m])` becomes `rate(x[5s])`, so a drill
    on one machine sees the production rules fire in seconds. Note that a range window needs at
    least two scrapes in it: keep windows several scrape intervals long (choose `minimum`).
    Durations inside string literals (label matchers) are left alone.
    """
    if not factor > 0:
        raise UsageError(f"shortening factor must be positive, got {factor!r}")
    floor_ms = milliseconds(minimum)
    data = yaml.safe_load(rules_yaml) or {}
    changes: list[Shortening] = []

    def scale(name: str, field: str, before: str) -> str:
        after = prometheus_spelling(max(floor_ms, round(milliseconds(before) * factor)))
        if after != before and Shortening(name, field, before, after) not in changes:
            changes.append(Shortening(name, field, before, after))
        return after

    for group in data.get("groups") or []:
        if "interval" in group:
            group["interval"] = scale(
                f"group {group.get('name', '?')}", "interval", str(group["interval"])
            )
        for rule in group.get("rules") or []:
            name = str(rule.get("alert") or rule.get("record") or "?")
            if "for" in rule:
                rule["for"] = scale(name, "for", str(rule["for"]))
            if "expr" in rule:
                rule["expr"] = _scale_ranges(str(rule["expr"]), functools.partial(scale, name))
                rule["expr"] = _scale_ages(str(rule["expr"]), name, factor, changes)
    shown = f"1/{1 / factor:g}" if factor < 1 and (1 / factor).is_integer() else f"{factor:g}"
    header = _header("alerts.yml", f"every `for` and range window × {shown}, minimum {minimum}")
    return header + _dump(data), changes


def render_alertmanager_config(
    webhook_url: str,
    group_wait: str = "1s",
    group_interval: str = "1s",
    repeat_interval: str = "1m",
) -> str:
    """The production alertmanager.yml, its webhook pointed at `webhook_url`, timings shortened."""
    _split_url(webhook_url, "webhook_url")
    for value in (group_wait, group_interval, repeat_interval):
        milliseconds(value)
    config = _load_yaml(alertmanager_config_path())
    route = config.setdefault("route", {})
    route.update(
        group_wait=group_wait, group_interval=group_interval, repeat_interval=repeat_interval
    )
    receivers = [r for r in config.get("receivers", []) if r.get("name") == route.get("receiver")]
    hooks = [hook for receiver in receivers for hook in receiver.get("webhook_configs", [])]
    if not hooks:
        raise UsageError(
            f"{alertmanager_config_path()} routes to no webhook receiver: "
            "give its default route a receiver with webhook_configs"
        )
    for hook in hooks:
        hook["url"] = webhook_url
    return _header("alertmanager.yml") + _dump(config)


def _scale_ages(expr: str, name: str, factor: float, changes: list[Shortening]) -> str:
    """`expr` with each AGE_THRESHOLD scaled by `factor` (at least 1 s), recorded as "age"."""

    def replace(match: re.Match[str]) -> str:
        after = str(max(1, round(int(match.group(2)) * factor)))
        if (change := Shortening(name, "age", match.group(2), after)) not in changes:
            changes.append(change)
        return match.group(1) + after

    return AGE_THRESHOLD.sub(replace, expr)


def _scale_ranges(expr: str, scale: Callable[[str, str], str]) -> str:
    """`expr` with each `[range]` or `[range:step]` outside string literals passed to `scale`."""

    def replace(match: re.Match[str]) -> str:
        window = scale("range", match.group(1))
        if match.group(2):
            return f"[{window}:{scale('resolution', match.group(2))}]"
        return f"[{window}:]" if ":" in match.group(0) else f"[{window}]"

    pieces = _STRING_LITERAL.split(expr)
    return "".join(p if i % 2 else _RANGE.sub(replace, p) for i, p in enumerate(pieces))


def _retarget(job: dict[str, Any], urls: dict[str, str | None]) -> dict[str, Any]:
    """One scrape job pointed at its local URL, with the global intervals."""
    name = job["job_name"]
    if name not in urls:
        raise UsageError(
            f"{prometheus_config_path()} has job {name!r}, which the embedded stack has no target "
            f"for: add a URL parameter for it to render_prometheus_config"
        )
    scheme, hostport, path = _split_url(str(urls[name]), f"URL of job {name}")
    job = {k: v for k, v in job.items() if k not in ("scrape_interval", "scrape_timeout")}
    job.update(scheme=scheme, static_configs=[{"targets": [hostport]}])
    if path and path != "/":
        job["metrics_path"] = path
    return job


def _split_url(url: str, what: str) -> tuple[str, str, str]:
    """(scheme, host:port, path) of `http://host:port/path`; a bare `host:port` means http."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("http", "https") or not parts.hostname or port is None:
        raise UsageError(
            f"{what} {url!r} is not a URL with a host and port, e.g. http://127.0.0.1:9090"
        )
    return parts.scheme, parts.netloc.rpartition("@")[2], parts.path.rstrip("/")


def _load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise UsageError(f"{path} is not a YAML mapping: restore it from the repository")
    return data


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings (PromQL) as `|` blocks, so generated rules stay readable."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _represent_str)


def _dump(data: dict[str, Any]) -> str:
    return yaml.dump(data, Dumper=_BlockDumper, sort_keys=False, allow_unicode=True, width=100)


def _header(source: str, change: str = "targets and intervals for one machine") -> str:
    return f"# Generated by opsdrill from system/prometheus/{source}: {change}. Do not edit.\n"
