"""What a drill may ask a target to put in place for it, and to undo afterwards.

A drill that needs a part the stack was started without (Toxiproxy between its parts, a
size-limited data filesystem) asks the target here instead of skipping. A backend that can add
the part does so for the duration of a context, journaled like a fault so that a killed run's
`opsdrill rollback` undoes it too; one that cannot keeps these defaults, which raise
`CapabilityMissing` with the sentence the drill skips with. `Target` inherits this mixin.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from opsdrill.errors import CapabilityMissing

__all__ = ["DrillParts", "ProxyHops"]

Say = Callable[[str], None]


@dataclass(frozen=True)
class ProxyHops:
    """The Toxiproxy hops of a stack: the server's API and the two links faults go on."""

    toxiproxy_url: str
    #: the database as the app reaches it, through the proxy `postgres` (app -> database),
    #: usable from the machine running opsdrill: the same proxy, so a toxic on it is measured
    #: as the app meets it
    app_dsn: str = field(repr=False)
    #: the API as clients behind the proxy `api` reach it (clients -> app)
    api_url: str


class DrillParts:
    """Parts a drill puts in place for itself; absent unless a backend implements them."""

    name: str

    def ensure_proxy(self, say: Say = print) -> AbstractContextManager[ProxyHops]:
        """A context in which Toxiproxy sits between the app and its database and in front
        of the API; what it had to change is undone on exit (and by rollback after a kill)."""
        raise CapabilityMissing(
            f"target {self.name!r} cannot put Toxiproxy between its parts; run network drills "
            "against a deployment that has one in front of its database and API"
        )

    def ensure_data_fs(self, size: str, say: Say = print) -> AbstractContextManager[Path]:
        """A context in which the app's data directory (yielded) lives on a filesystem of
        `size`, so it can really fill up; undone on exit (and by rollback after a kill)."""
        raise CapabilityMissing(
            f"target {self.name!r} cannot put its data directory on a size-limited "
            "filesystem, and filling its real disk is never an option"
        )
