"""The frozen form of a deployed campaign that a journey workflow carries.

Plain dataclasses only: workflows import this module, so it must stay free of
I/O and of anything non-deterministic. A running journey keeps the snapshot it
was started with, whatever is deployed after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SendStepSnapshot:
    id: str
    template: str
    channels: list[str]
    urgent: bool = False
    on_cap: str = "skip"
    max_hold_seconds: int | None = None


@dataclass(frozen=True)
class CampaignSnapshot:
    campaign_id: str
    name: str
    version: int
    content_hash: str
    category: str
    topic: str | None = None
    steps: list[SendStepSnapshot] = field(default_factory=list)
