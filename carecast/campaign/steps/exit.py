"""`exit: true`: the journey ends here."""

from __future__ import annotations

from typing import Literal

from carecast.campaign.steps.base import StepBase


class Exit(StepBase):
    kind = "exit"
    exit: Literal[True]

    def falls_through(self) -> bool:
        return False
