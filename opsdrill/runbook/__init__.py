"""The runbook's procedures by ID (../shared/RUNBOOK.md), the denominator of coverage."""

from __future__ import annotations

from opsdrill.errors import UsageError

__all__ = ["NOT_APPLICABLE", "PROCEDURES", "check_id", "title"]

PROCEDURES: dict[str, str] = {
    "2.3": "Service level objectives",
    "3.1.1": "Daily health check",
    "3.1.2": "Error logs",
    "3.1.3": "Run status",
    "3.2.1": "Weekly maintenance",
    "3.2.2": "Weekly performance report",
    "3.3.1": "Monthly capacity review",
    "3.3.2": "Monthly security review",
    "3.3.3": "Monthly archive",
    "4.1.1": "Dashboards",
    "4.1.2": "Metric thresholds",
    "4.2": "Alert rules",
    "4.3": "Log analysis",
    "5.2.1": "Service does not start",
    "5.2.2": "Database connection errors",
    "5.2.3": "Out of memory",
    "5.2.4": "Disk full",
    "5.2.5": "Slow API",
    "5.3.1": "Service restart",
    "5.3.2": "Database recovery",
    "6.1.1": "Slow statements and indexes",
    "6.1.2": "Connection pool settings",
    "6.2.1": "Parallel runs",
    "6.2.2": "Config and result caching",
    "7": "Scaling",
    "7.2.1": "Adding a Ray worker node",
    "8.1.2": "Maintenance mode",
    "8.3": "Vacuum and reindex",
    "9": "Incident records",
    "12": "Knowledge base",
}

#: procedures no check can verify on a deployment, with the reason (for the coverage table)
NOT_APPLICABLE: dict[str, str] = {
    "6.2.2": "caching is an implementation property: the config is read once at start-up "
    "(nothing on a running target shows it); the Redis result cache is optional (checks/"
    "test_redis.py covers it where the stack runs Redis)",
    "7": "scaling is capacity-planning advice for growing the stack (bigger hosts, Ray "
    "workers, app replicas, read replicas), not a state of a deployment; the one invariant "
    "in it, parallel runs sized to the machine, is checked under 6.2.1",
}


def check_id(procedure_id: str) -> str:
    """The ID itself if the runbook has it; a clear error naming the known IDs otherwise."""
    if procedure_id not in PROCEDURES:
        raise UsageError(
            f"unknown runbook procedure {procedure_id!r}: use one of {', '.join(PROCEDURES)}"
        )
    return procedure_id


def title(procedure_id: str) -> str:
    return PROCEDURES.get(procedure_id, "?")
