"""Faults, one per module; importing this package registers every kind for rollback."""

from opsdrill.faults.base import REGISTRY, Fault
from opsdrill.faults.service_kill import AppCrash, DbDown

__all__ = ["REGISTRY", "AppCrash", "DbDown", "Fault"]
