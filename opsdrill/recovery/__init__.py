"""The runbook's recovery procedures as code; each returns the actions it took, in words.

service_restart     §5.3.1  stop, kill leftovers by pid file, clean up, start, poll /health
db_recovery         §5.3.2  restore the newest backup, a safety dump first
idle_sessions       §5.2.2  fix 2: terminate sessions idle for too long
blocking_sessions   §5.2.2  fix 3: find and terminate the session blocking others
port_owner          §5.2.1  who listens on a port, from /proc (never by process name)
"""

from opsdrill.recovery.blocking_sessions import terminate_blockers
from opsdrill.recovery.db_recovery import recover_database
from opsdrill.recovery.idle_sessions import terminate_idle
from opsdrill.recovery.port_owner import listening_pids
from opsdrill.recovery.service_restart import restart_service

__all__ = [
    "listening_pids",
    "recover_database",
    "restart_service",
    "terminate_blockers",
    "terminate_idle",
]
