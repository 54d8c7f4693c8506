"""The game day: run each suite in turn, judge it against the plan, report.

`run` drives the suites, `plan` says which skips are expected where, `junit` reads what a
suite did, `verdict` turns that into PASSED, FAILED or INCOMPLETE.
"""
