"""`wait`: sleep for a while (`2d`), on a durable timer; an exit or goal event still ends the journey."""

from __future__ import annotations

from carecast.campaign.durations import Duration
from carecast.campaign.steps.base import StepBase


class Wait(StepBase):
    kind = "wait"
    waits = True
    wait: Duration
