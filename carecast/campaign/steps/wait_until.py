"""`wait_until`: sleep until a time of day (and weekday) in the contact's own zone."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from carecast.campaign.patterns import CLOCK
from carecast.campaign.steps.base import StepBase, Strict

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class WaitUntilTime(Strict):
    time: str = Field(pattern=CLOCK, description="local time of day in the contact's zone")
    weekdays: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] | None = None


class WaitUntil(StepBase):
    kind = "wait_until"
    waits = True
    wait_until: WaitUntilTime
