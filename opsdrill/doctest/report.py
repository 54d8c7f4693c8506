"""The doctest's findings: a table a human reads, and JSON a pipeline keeps."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsdrill.doctest.validate import BROKEN, Result

__all__ = ["Report"]


@dataclass
class Report:
    """Every statement's verdict for one runbook against one database."""

    path: Path
    database: str  # host:port/dbname, never the password
    production: bool
    results: list[Result]

    @property
    def broken(self) -> list[Result]:
        return [r for r in self.results if r.verdict == BROKEN]

    @property
    def counts(self) -> dict[str, int]:
        counts = Counter(r.verdict for r in self.results)
        return {v: counts.get(v, 0) for v in ("ok", "broken", "skipped")}

    def summary(self) -> str:
        c = self.counts
        return (
            f"{self.path}: {len(self.results)} statements against {self.database}"
            f"{' (production: nothing that writes was run)' if self.production else ''}: "
            f"{c['ok']} ok, {c['broken']} broken, {c['skipped']} skipped"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "database": self.database,
            "production": self.production,
            "counts": self.counts,
            "statements": [
                {
                    "id": r.id,
                    "section": r.statement.section,
                    "procedure": r.statement.procedure,
                    "line": r.statement.line,
                    "source": r.statement.source,
                    "kind": r.kind.value,
                    "method": r.method,
                    "verdict": r.verdict,
                    "reason": r.reason,
                    "sqlstate": r.sqlstate,
                    "error": r.error,
                    "hint": r.hint,
                    "sql": r.statement.sql,
                }
                for r in self.results
            ],
        }

    def write_json(self, out: Path) -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(self.to_json(), indent=2) + "\n")

    def render_text(self, *, verbose: bool = False) -> str:
        """A table of every statement (or only the broken and skipped), then the details."""
        lines = [f"{'id':<5} {'line':>5} {'proc':<7} {'kind':<19} {'verdict':<8} statement"]
        for r in self.results:
            if verbose or r.verdict != "ok":
                lines.append(
                    f"{r.id:<5} {r.statement.line:>5} {r.statement.procedure or '-':<7} "
                    f"{r.kind.value:<19} {r.verdict:<8} {r.statement.first_line[:60]}"
                )
        for r in self.broken:
            lines += [
                "",
                f"BROKEN {r.id}  {self.path}:{r.statement.line}  ({r.statement.source})",
                f"  section: {r.statement.section}",
                f"  sql:     {r.statement.first_line}",
                f"  error:   {r.error}" + (f" [{r.sqlstate}]" if r.sqlstate else ""),
            ]
            if r.hint:
                lines.append(f"  hint:    {r.hint}")
        skipped = [r for r in self.results if r.verdict == "skipped"]
        if skipped:
            lines.append("")
            lines += [f"skipped {r.id} (line {r.statement.line}): {r.reason}" for r in skipped]
        lines += ["", self.summary()]
        return "\n".join(lines)

    def failure_message(self) -> str:
        """One paragraph per broken statement: for a pytest assertion."""
        parts = [
            f"{self.path}:{r.statement.line} [{r.statement.section}] {r.statement.first_line}\n"
            f"    error: {r.error}\n    hint: {r.hint or '-'}"
            for r in self.broken
        ]
        return f"{len(parts)} broken statement(s) in the runbook:\n" + "\n".join(parts)
