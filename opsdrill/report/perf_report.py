"""The weekly performance report (runbook §3.2.2) with figures, as Markdown and JSON.

The runbook's own script writes its report through a quoted here-document, so the report
holds the text of its `$(...)` commands rather than their output. Here every figure is
gathered first, as data, and the Markdown is rendered from that data; `missing` records why a
section has no figures (e.g. pg_stat_statements not installed) instead of leaving it blank.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["PerformanceReport", "render_markdown", "write"]


@dataclass
class PerformanceReport:
    generated_at: str
    target: str
    cpu_percent: float
    memory_percent: float
    memory_total_bytes: int
    disks: list[dict[str, Any]]
    database_size_bytes: int
    runs_by_status: list[dict[str, Any]]
    training_by_model: list[dict[str, Any]]
    error_counts: dict[str, int]
    slowest_statements: list[dict[str, Any]] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def now() -> str:
        return datetime.now(UTC).isoformat(timespec="seconds")


def _num(v: Any, digits: int = 2) -> str:
    return "–" if v is None else f"{v:,.{digits}f}" if isinstance(v, float) else f"{v:,}"


def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_num(c) if not isinstance(c, str) else c for c in r) + " |"
              for r in rows]  # fmt: skip
    return lines


def render_markdown(r: PerformanceReport) -> str:
    """The report for people; every cell comes from the figures, never from a command's text."""
    out = [f"# Weekly performance report — {r.target}", "", f"Generated {r.generated_at}.", "",
           "## Host", "",
           f"CPU {r.cpu_percent:.1f} %, memory {r.memory_percent:.1f} % of "
           f"{r.memory_total_bytes / 2**30:.1f} GiB.", ""]  # fmt: skip
    out += _table(["path", "mount", "used %", "size GiB"],
                  [[d["path"], d["mount"], d["percent"], d["size_bytes"] / 2**30]
                   for d in r.disks])  # fmt: skip
    out += ["", "## Database", "", f"Size {r.database_size_bytes / 2**20:.1f} MiB.", ""]
    if r.slowest_statements:
        out += _table(
            ["query", "calls", "mean ms", "max ms"],
            [
                [
                    s["query"][:80].replace("|", "\\|").replace("\n", " "),
                    s["calls"],
                    s["mean_exec_time"],
                    s["max_exec_time"],
                ]
                for s in r.slowest_statements
            ],
        )
    else:
        out.append(f"Slowest statements: not available ({r.missing.get('slowest_statements')}).")
    out += ["", "## Runs, last 7 days", ""]
    out += _table(
        ["status", "runs", "mean duration s"],
        [[x["status"], x["runs"], x["mean_seconds"]] for x in r.runs_by_status],
    )
    out += ["", "## Training by model, last 7 days", ""]
    out += _table(["model", "models", "mean training s", "mean size bytes"],
                  [[x["model_name"], x["models"], x["mean_training_seconds"],
                    x["mean_size_bytes"]] for x in r.training_by_model])  # fmt: skip
    out += ["", "## Errors, last 7 days", ""]
    out += _table(["level", "rows"], [[k, v] for k, v in sorted(r.error_counts.items())])
    return "\n".join(out) + "\n"


def write(report: PerformanceReport, directory: Path) -> tuple[Path, Path]:
    """reports/weekly-performance-<UTC>.md and .json; returns both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    md = directory / f"weekly-performance-{stamp}.md"
    js = md.with_suffix(".json")
    md.write_text(render_markdown(report), encoding="utf-8")
    js.write_text(json.dumps(asdict(report), indent=2, default=str), encoding="utf-8")
    return md, js
