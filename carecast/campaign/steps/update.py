"""`update`: set contact attributes and the lifecycle stage; a stage change is announced to journeys."""

from __future__ import annotations

from carecast.campaign.steps.base import Name, StepBase, Strict


class ContactChange(Strict):
    attributes: dict[str, str | int | float | bool | None] | None = None
    lifecycle_stage: Name | None = None


class Update(StepBase):
    kind = "update"
    update: ContactChange
