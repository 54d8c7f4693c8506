"""A pytest plugin that breaks the weekly report's procedure, for meta-tests (`-p`).

It changes the report's run-duration query the way a units slip would (minutes, still
labelled seconds). Nothing in opsdrill or the stack can switch this on; a meta-test loads it
into the `pytest checks` run it starts, to show the report check compares with the database.
"""

from __future__ import annotations

from opsdrill.runbook import queries

queries.RUNS_BY_STATUS_7D = queries.RUNS_BY_STATUS_7D.replace(
    "avg(execution_duration_seconds)::float", "(avg(execution_duration_seconds) / 60)::float"
)
assert "/ 60" in queries.RUNS_BY_STATUS_7D, "the report query changed: update this breakage"
