"""The dataclasses that cross between workflows and activities.

Workflows call activities by name with these, so workflow code never imports
the activity modules (and with them SQLAlchemy, Jinja2 or provider SDKs).
Payloads carry ids and small values only: no address, no rendered body.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

DELIVER = "deliver"
# Events that announce a lifecycle move; a stage-triggered journey ends on leaving its stage.
STAGE_ENTERED, STAGE_LEFT = "stage_entered", "stage_left"
NEXT_LOCAL_TIME = "next_local_time"
MATCH_CASE = "match_case"
UPDATE_CONTACT = "update_contact"
# One deliver attempt may take this long; a `sending` row older than this belongs to no live attempt.
DELIVER_TIMEOUT = timedelta(minutes=1)


@dataclass(frozen=True)
class DeliverInput:
    workflow_id: str
    campaign_id: str
    campaign_name: str
    campaign_version: int
    category: str
    step_id: str
    template: str
    channels: list[str]
    contact_id: str
    trigger_event_id: str | None
    topic: str | None = None
    urgent: bool = False
    on_cap: str = "skip"
    # When the step first asked to send, and how long it may wait after that.
    held_since: datetime | None = None
    max_hold_seconds: int | None = None
    # A holdout contact's journey records the message it would have sent, and sends nothing.
    holdout: bool = False
    # The workflow's clock when it asked. The policy decides at no earlier moment, so a journey
    # that slept until morning (on the time-skipping test server too) is judged in the morning.
    asked_at: datetime | None = None
    # Counts the sends of this step within one journey, never the activity attempt,
    # so the idempotency key is the same on every retry and replay.
    occurrence: int = 0
    # The campaign's own "Name <address>" for emails; None: the house default.
    sender: str | None = None
    reply_to: str | None = None

    @property
    def idempotency_key(self) -> str:
        return f"{self.workflow_id}/{self.step_id}/{self.contact_id}/{self.occurrence}"


@dataclass(frozen=True)
class DeliverResult:
    delivery_id: int
    status: str  # "sent", "skipped", "failed", "uncertain", "deferred" or "holdout"
    channel: str | None = None
    reason: str | None = None
    deferred_until: datetime | None = None
    # The same moment in the contact's own zone, for timer summaries: "08:00 Europe/Paris".
    deferred_until_local: str | None = None


@dataclass(frozen=True)
class NextLocalTimeInput:
    contact_id: str
    time_of_day: str  # HH:MM in the contact's zone
    weekdays: list[str]  # mon..sun; empty means any day
    after: datetime


@dataclass(frozen=True)
class NextLocalTimeResult:
    at: datetime
    local: str  # e.g. "Mon 10:00 Europe/Paris", for the timer's summary


@dataclass(frozen=True)
class MatchCaseInput:
    contact_id: str
    trigger_event_id: str | None
    conditions: list[dict]
    now: datetime


@dataclass(frozen=True)
class MatchCaseResult:
    index: int  # the first condition that holds, or -1


@dataclass(frozen=True)
class UpdateContactInput:
    contact_id: str
    attributes: dict | None
    lifecycle_stage: str | None


@dataclass(frozen=True)
class JourneyEvent:
    """A signal to a running journey: an event of its contact that it may wait for or exit on."""

    name: str
    event_id: str
    stage: str | None = None  # for stage_entered / stage_left
