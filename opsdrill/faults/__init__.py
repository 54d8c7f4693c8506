"""Faults, one per module; importing this package registers every kind for rollback."""

from opsdrill.faults.base import REGISTRY, Fault
from opsdrill.faults.broken_config import BrokenConfig
from opsdrill.faults.cpu_hog import CpuHog
from opsdrill.faults.data_loss import DataLoss
from opsdrill.faults.db_restart import DbRestart
from opsdrill.faults.disk_full import DiskFull
from opsdrill.faults.gpu_oom import GpuOom
from opsdrill.faults.host_oom import HostOom
from opsdrill.faults.lock_contention import LockContention
from opsdrill.faults.mlflow_down import MlflowDown
from opsdrill.faults.network import Bandwidth, Latency, ResetPeer, Timeout
from opsdrill.faults.pool_exhaustion import PoolExhaustion
from opsdrill.faults.port_conflict import PortConflict
from opsdrill.faults.ray_down import RayHeadDown, RayWorkerDown
from opsdrill.faults.redis_down import RedisDown
from opsdrill.faults.runaway_runs import RunawayRuns
from opsdrill.faults.service_kill import AppCrash, DbDown
from opsdrill.faults.service_pause import ServicePause

__all__ = [
    "REGISTRY",
    "AppCrash",
    "Bandwidth",
    "BrokenConfig",
    "CpuHog",
    "DataLoss",
    "DbDown",
    "DbRestart",
    "DiskFull",
    "Fault",
    "GpuOom",
    "HostOom",
    "Latency",
    "LockContention",
    "MlflowDown",
    "PoolExhaustion",
    "PortConflict",
    "RayHeadDown",
    "RayWorkerDown",
    "RedisDown",
    "ResetPeer",
    "RunawayRuns",
    "ServicePause",
    "Timeout",
]
