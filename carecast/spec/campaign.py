"""Pydantic models of a campaign file (`campaigns/<id>.yaml`).

This is the journey core: an event trigger and `send` steps. Unknown keys are
errors, so a typo never silently changes what a campaign does.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from carecast.channels.base import CHANNELS
from carecast.spec.durations import Duration
from carecast.spec.snapshot import CampaignSnapshot, SendStepSnapshot

IDENTIFIER = r"^[a-z][a-z0-9_-]{0,63}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Trigger(Strict):
    event: str = Field(pattern=IDENTIFIER, description="name of the event that enrols a contact")


DEFAULT_MAX_HOLD = timedelta(days=2)


class SendAction(Strict):
    template: str = Field(pattern=IDENTIFIER, description="template name under templates/")
    channels: list[str] = Field(min_length=1, description="channels in order of preference")
    urgent: bool = Field(default=False, description="transactional SMS/voice may break quiet hours")
    on_cap: Literal["skip", "defer"] = Field(default="skip", description="what a capped marketing message does")
    max_hold: Duration = Field(
        default=DEFAULT_MAX_HOLD, description="how long a deferred message may wait before it expires"
    )

    @field_validator("channels")
    @classmethod
    def known_channels(cls, channels: list[str]) -> list[str]:
        unknown = [c for c in channels if c not in CHANNELS]
        if unknown:
            raise ValueError(f"unknown channel {unknown[0]!r}; use one of {', '.join(CHANNELS)}")
        if len(set(channels)) != len(channels):
            raise ValueError("a channel is listed twice")
        return channels


class SendStep(Strict):
    id: str = Field(pattern=IDENTIFIER)
    send: SendAction


class Campaign(Strict):
    id: str = Field(pattern=IDENTIFIER)
    name: str
    description: str = ""
    category: Literal["transactional", "care", "marketing"]
    topic: str | None = Field(default=None, pattern=IDENTIFIER, description="subscription topic contacts can leave")
    trigger: Trigger
    steps: list[SendStep] = Field(min_length=1)

    @field_validator("steps")
    @classmethod
    def unique_step_ids(cls, steps: list[SendStep]) -> list[SendStep]:
        seen: set[str] = set()
        for step in steps:
            if step.id in seen:
                raise ValueError(f"step id {step.id!r} is used twice")
            seen.add(step.id)
        return steps

    @model_validator(mode="after")
    def marketing_has_a_topic(self) -> Campaign:
        if self.category == "marketing" and self.topic is None:
            raise ValueError("a marketing campaign needs a topic, so contacts can unsubscribe from it")
        return self

    def content_hash(self) -> str:
        """Changes exactly when the campaign's meaning changes (not its YAML layout)."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def snapshot(self, version: int) -> CampaignSnapshot:
        return CampaignSnapshot(
            campaign_id=self.id,
            name=self.name,
            version=version,
            content_hash=self.content_hash(),
            category=self.category,
            steps=[
                SendStepSnapshot(id=s.id, template=s.send.template, channels=list(s.send.channels)) for s in self.steps
            ],
        )
