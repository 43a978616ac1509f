"""The dataclasses that cross between workflows and activities.

Workflows call activities by name with these, so workflow code never imports
the activity modules (and with them SQLAlchemy, Jinja2 or provider SDKs).
Payloads carry ids and small values only: no address, no rendered body.
"""

from __future__ import annotations

from dataclasses import dataclass

DELIVER = "deliver"


@dataclass(frozen=True)
class DeliverInput:
    workflow_id: str
    campaign_id: str
    campaign_version: int
    category: str
    step_id: str
    template: str
    channels: list[str]
    contact_id: str
    trigger_event_id: str | None
    # Counts the sends of this step within one journey, never the activity attempt,
    # so the idempotency key is the same on every retry and replay.
    occurrence: int = 0

    @property
    def idempotency_key(self) -> str:
        return f"{self.workflow_id}/{self.step_id}/{self.occurrence}"


@dataclass(frozen=True)
class DeliverResult:
    delivery_id: int
    status: str  # "sent", "skipped" or "failed"
    channel: str | None = None
    reason: str | None = None
