"""`send`: one message, by the first channel the policy allows (a broadcast's `send` is the same)."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator

from carecast.campaign.durations import Duration
from carecast.campaign.steps.base import Name, StepBase, Strict
from carecast.channels.base import CHANNELS

DEFAULT_MAX_HOLD = timedelta(days=2)


class SendAction(Strict):
    template: Name = Field(description="template name under templates/")
    channels: list[str] | Literal["preferred"] = Field(
        description="channels in order of preference, or `preferred` for the contact's own order"
    )
    urgent: bool = Field(default=False, description="transactional SMS/voice may break quiet hours")
    on_cap: Literal["skip", "defer"] = Field(default="skip", description="what a capped marketing message does")
    max_hold: Duration = Field(default=DEFAULT_MAX_HOLD, description="how long a deferred message may wait")

    @field_validator("channels")
    @classmethod
    def known_channels(cls, channels: list[str] | str) -> list[str] | str:
        if isinstance(channels, str):
            return channels
        if not channels:
            raise ValueError("list at least one channel, e.g. [email, sms]")
        unknown = [c for c in channels if c not in CHANNELS]
        if unknown:
            raise ValueError(f"unknown channel {unknown[0]!r}; use one of {', '.join(CHANNELS)}")
        if len(set(channels)) != len(channels):
            raise ValueError("a channel is listed twice")
        return channels

    def channel_list(self) -> list[str]:
        return list(CHANNELS) if self.channels == "preferred" else list(self.channels)


class Send(StepBase):
    kind = "send"
    send: SendAction
