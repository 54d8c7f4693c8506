"""A broken build of the stack's archive, for meta-tests: put this directory first on
PYTHONPATH and every Python process started with it exports metric values as 0.

The file, its checksum and the archive's own summary all still agree with each other (they
are computed from the same wrong rows), which is exactly what a check that trusts the
self-report cannot see. Nothing in opsdrill or the stack loads this.
"""

from __future__ import annotations

from typing import Any

import nf_auto_runner.ops.archive as archive

_line = archive._line


def _lossy_line(table: str, key: Any, row: dict[str, Any]) -> list[str]:
    if table == "metrics":
        row = {**row, "value": 0.0}
    return _line(table, key, row)


archive._line = _lossy_line
