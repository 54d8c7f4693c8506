"""Did a VACUUM (ANALYZE) really happen? Read it from pg_stat_user_tables, not from the tool.

`VACUUM` by a role that does not own a table skips it with a WARNING and succeeds, so "the
command exited 0" proves nothing; the statistics view records when each table was last
vacuumed and analysed (by hand or by autovacuum), and those times must move.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from opsdrill.polling import poll

__all__ = ["VACUUM_STATS", "Stamps", "not_moved", "stamps"]

VACUUM_STATS = """
SELECT relname AS table_name,
       greatest(last_vacuum, last_autovacuum) AS vacuumed,
       greatest(last_analyze, last_autoanalyze) AS analyzed
FROM pg_stat_user_tables WHERE schemaname = current_schema()"""

#: table -> (last vacuum, last analyze), each None if never
Stamps = dict[str, tuple[datetime | None, datetime | None]]
Read = Callable[..., list[dict[str, Any]]]


def stamps(read: Read) -> Stamps:
    return {r["table_name"]: (r["vacuumed"], r["analyzed"]) for r in read(VACUUM_STATS)}


def _later(after: datetime | None, before: datetime | None) -> bool:
    return after is not None and (before is None or after > before)


def not_moved(
    read: Read, before: Stamps, tables: Iterable[str], analyze: bool, timeout: float = 5.0
) -> list[str]:
    """Tables whose last vacuum (and analyze, if asked) did not move since `before`, each
    with its times; polled briefly, as statistics reach the view a moment after the command."""
    stuck: list[str] = []

    def settled() -> bool | None:
        nonlocal stuck
        now = stamps(read)
        stuck = [
            f"{t} (last vacuum {now.get(t, (None, None))[0]}, last analyze "
            f"{now.get(t, (None, None))[1]}; before {before.get(t, (None, None))[0]})"
            for t in tables
            if not _later(now.get(t, (None, None))[0], before.get(t, (None, None))[0])
            or (analyze and not _later(now.get(t, (None, None))[1], before.get(t, (None, None))[1]))
        ]
        return None if stuck else True

    poll(settled, timeout, interval=0.2)
    return stuck
