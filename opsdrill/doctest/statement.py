"""A statement found in a runbook, with where it came from."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["Context", "Statement"]


@dataclass
class Statement:
    """One SQL statement and where a reader finds it in the runbook."""

    sql: str
    section: str  # heading path, "3. Routine operations > 3.2.1 Weekly maintenance"
    procedure: str | None  # the innermost numbered heading, "3.2.1"
    line: int  # 1-based line of the statement's first token in the Markdown file
    source: str  # "sql fence", "psql -c", "psql here-doc", "psql \\copy"
    block: int  # statements of one block share a transaction when validated
    skip_reason: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def first_line(self) -> str:
        """The statement on one line, leading comments dropped: for tables and messages."""
        code = re.sub(r"^(\s*(--[^\n]*|/\*.*?\*/))+", "", self.sql, flags=re.S)
        return " ".join(code.split())[:100]


@dataclass
class Context:
    section: str
    procedure: str | None
    source: str
    block: int
