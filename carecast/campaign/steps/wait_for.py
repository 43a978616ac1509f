"""`wait_for`: go on when an event comes, or take `on_timeout` when it does not come in time.

An event that already came since the journey began counts, unless an earlier visit
of this step used it: a contact who completed their profile on day 0 is not asked
to on day 3, and a loop through this step needs a new event each time round.
"""

from __future__ import annotations

from pydantic import Field

from carecast.campaign.durations import Duration
from carecast.campaign.steps.base import Jump, Name, StepBase, Strict


class WaitForEvent(Strict):
    event: Name
    timeout: Duration
    on_timeout: Name | None = Field(default=None, description="step to go to when the event does not come")


class WaitFor(StepBase):
    kind = "wait_for"
    waits = True
    wait_for: WaitForEvent

    def jumps(self) -> list[Jump]:
        target = self.wait_for.on_timeout
        return [(target, ("wait_for", "on_timeout"))] if target else []

    def listens_to(self) -> set[str]:
        return {self.wait_for.event}
