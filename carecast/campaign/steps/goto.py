"""`goto`: go on at another step; with a step that waits on the way, that is a loop."""

from __future__ import annotations

from carecast.campaign.steps.base import Jump, Name, StepBase


class Goto(StepBase):
    kind = "goto"
    goto: Name

    def falls_through(self) -> bool:
        return False

    def jumps(self) -> list[Jump]:
        return [(self.goto, ("goto",))]
