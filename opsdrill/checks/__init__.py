"""Reusable logic behind `checks/`: thresholds, host and metric figures, reports, alert rules.

The pytest modules in `checks/` stay short and readable; what they compute lives here, so it
can be unit-tested without a stack and reused by reports.
"""
