"""Everything a run left in its reports directory, read back into plain data.

A game day writes one folder per suite (`checks/`, `chaos/`, `load/`) under its run folder;
a section of the report appears only when its artefacts exist, so the same builder serves a
plain `pytest checks` run as well as a full game day.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsdrill.drill.incident import Incident

__all__ = ["RunArtefacts"]


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


@dataclass
class RunArtefacts:
    root: Path
    summary: dict[str, Any] | None = None
    coverage: dict[str, dict[str, Any]] = field(default_factory=dict)  # procedure -> row
    incidents: list[Incident] = field(default_factory=list)
    slo: dict[str, Any] | None = None
    #: incident id -> what a load running during that drill saw (chaos/test_under_load.py)
    load_during: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path) -> RunArtefacts:
        run = cls(root=root, summary=_read(root / "summary.json"))
        for path in sorted(root.rglob("runbook-coverage.json")):
            for row in (_read(path) or {}).get("procedures", []):
                run._merge_coverage(row)
        for path in sorted(root.rglob("incidents/*.json")):
            if data := _read(path):
                run.incidents.append(Incident.from_dict(data))
        run.incidents.sort(key=lambda i: i.incident_id)
        for path in sorted(root.rglob("load-during-*.json")):
            if (data := _read(path)) and "incident_id" in data:
                run.load_during[data["incident_id"]] = data
        for path in sorted(root.rglob("slo.json")):
            run.slo = _read(path)
        return run

    def _merge_coverage(self, row: dict[str, Any]) -> None:
        """Several suites may cover one procedure: keep every test, the worst result wins;
        covered if a test ran in any suite, "skipped" only if every suite's tests skipped."""
        rank = {
            "failed": 3,
            "error": 3,
            "passed": 1,
            "skipped": 0,
            "not covered": -1,
            "not applicable": -1,
        }
        pid = row["procedure"]
        covered = bool(row.get("covered", row["result"] in ("passed", "failed")))
        have = self.coverage.setdefault(pid, {**row, "tests": {}, "hosts": {}, "covered": False})
        have["tests"].update(row.get("tests", {}))
        hosts = have.setdefault("hosts", {})
        for host, outcome in (row.get("hosts") or {}).items():  # a fleet's host: worst wins
            if rank.get(outcome, 0) > rank.get(hosts.get(host, "not covered"), -1):
                hosts[host] = outcome
        have["covered"] = have["covered"] or covered  # a test that ran, in any suite
        if rank.get(row["result"], 0) > rank.get(have["result"], 0):
            have["result"] = row["result"]
