"""Parts the embedded stack puts in place for a drill, journaled like faults.

`LocalTarget.ensure_proxy` and `ensure_data_fs` change the stack itself (Toxiproxy between
its parts; its home moved onto a size-limited image) for a session. Each change is journaled
as one of these, so that a killed run's `opsdrill rollback` takes it out again. They live with
the backend whose mechanics they call; importing `opsdrill.targets.local` registers them.
"""

from __future__ import annotations

from typing import Protocol

from opsdrill.faults.base import Fault, register

__all__ = ["DataFsInPlace", "ProxyInPlace"]


class Rewirable(Protocol):
    """What these parts call on the embedded target (LocalTarget implements it)."""

    def install_proxy(self) -> None: ...
    def remove_proxy(self) -> None: ...
    def install_data_fs(self, size: str) -> None: ...
    def remove_data_fs(self) -> None: ...


@register
class ProxyInPlace(Fault):
    """Not a fault: Toxiproxy put between the stack's parts for network drills, journaled like
    one so that a killed run's rollback takes it out again (`Target.ensure_proxy`)."""

    kind = "proxy_in_place"
    blast_radius = "the app restarts onto the proxy, and back onto its direct database link"
    undo_summary = "restart the app on its direct database link, then stop the proxy"
    target: Rewirable

    def __init__(self, target: Rewirable) -> None:
        super().__init__(target)

    def describe(self) -> str:
        return "proxy_in_place(app -> proxy -> db, clients -> proxy -> api)"

    def _inject(self) -> None:
        self.target.install_proxy()

    def _revert(self) -> None:
        self.target.remove_proxy()


@register
class DataFsInPlace(Fault):
    """Not a fault: the stack's home moved onto a size-limited filesystem for the disk drill,
    journaled like one so that a killed run's rollback moves it back
    (`Target.ensure_data_fs`)."""

    kind = "data_fs_in_place"
    blast_radius = "the app restarts onto a size-limited copy of its home, and back"
    undo_summary = "stop the app, copy its home back off the image, remove the image, start it"
    target: Rewirable

    def __init__(self, target: Rewirable, *, size: str) -> None:
        super().__init__(target, size=size)

    def _inject(self) -> None:
        self.target.install_data_fs(self.params["size"])

    def _revert(self) -> None:
        self.target.remove_data_fs()
