"""Redis, the forecast cache, killed by pid: the app must keep serving from the model.

Redis is low priority (runbook §2.1): its loss costs cache hits, never a forecast. Revert
starts it again (empty: it keeps no data on disk, the app refills it).
"""

from __future__ import annotations

from opsdrill.faults.base import CONTROL, register
from opsdrill.faults.service_kill import ServiceKill

__all__ = ["RedisDown"]


@register
class RedisDown(ServiceKill):
    """redis-server killed (or stopped): forecasts are cached in process until it is back."""

    kind = "redis_down"

    needs = CONTROL
    service = "redis"
    blast_radius = "the shared forecast cache: every API process recomputes its forecasts"
    undo_summary = "start Redis again (empty; the app refills it)"
