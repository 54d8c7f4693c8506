"""Long training runs filling the parallel slots and holding memory: runbook §5.2.3 fix 2's case.

"Too many parallel runs" is made real: `count` runs with many training steps are submitted
through the API, so real workers import torch and train for minutes, each holding hundreds of
MiB. Their ids are journaled before they are submitted; reverting cancels whichever of them is
still scheduled or running (the executor then stops its worker), so none outlives the run.
"""

from __future__ import annotations

from opsdrill.errors import FaultNotEffective
from opsdrill.faults.base import Fault, register
from opsdrill.stack.runs import ACTIVE, RunsClient
from opsdrill.targets.base import Target

__all__ = ["RunawayRuns"]


@register
class RunawayRuns(Fault):
    """`count` training runs of `max_steps` steps each: the slots are full, memory is held."""

    kind = "runaway_runs"
    blast_radius = "training: the parallel slots are taken; host memory held by their workers"
    undo_summary = "cancel every journaled run still scheduled or running (workers stopped)"

    def __init__(
        self, target: Target, *, count: int = 2, max_steps: int = 5000, model: str = "MLP"
    ) -> None:
        super().__init__(target, count=count, max_steps=max_steps, model=model)

    @property
    def run_ids(self) -> list[int]:
        return list(self.entry.undo.get("runs", []))

    def _inject(self) -> None:
        client = RunsClient(self.target)
        ids: list[int] = []
        for i in range(self.params["count"]):
            self.save_undo(runs=ids, submitting=i)  # a kill mid-submit leaves the ids known
            ids.append(client.submit(f"opsdrill-runaway-{i}", max_steps=self.params["max_steps"],
                                     model=self.params["model"]))  # fmt: skip
            self.save_undo(runs=ids)
        if not ids:
            raise FaultNotEffective("no runaway run was submitted")

    def _revert(self) -> None:
        client = RunsClient(self.target)
        for run_id in self.run_ids:
            if client.get(run_id)["status"] in ACTIVE:
                client.cancel(run_id, "opsdrill reverted the runaway_runs fault")
