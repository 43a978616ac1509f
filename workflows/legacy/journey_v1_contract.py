"""What journeys of the first workflow type (`JourneyWorkflow`) were started with and report.

Only for the journeys started before the `Journey` workflow type, until they finish:
nothing starts one any more. The campaign travelled as a snapshot of plain data
classes, kept here as they were so those journeys' payloads still decode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class BranchCaseSnapshot:
    condition: dict[str, Any]
    goto: str


@dataclass(frozen=True)
class StepSnapshot:
    """One step; which fields matter depends on `kind` (send, wait, wait_until, wait_for, branch, update, exit)."""

    id: str
    kind: str
    # send
    template: str | None = None
    channels: list[str] = field(default_factory=list)
    urgent: bool = False
    on_cap: str = "skip"
    max_hold_seconds: int | None = None
    # wait
    seconds: int | None = None
    # wait_until
    time_of_day: str | None = None
    weekdays: list[str] = field(default_factory=list)
    # wait_for
    event: str | None = None
    timeout_seconds: int | None = None
    on_timeout: str | None = None
    # branch
    cases: list[BranchCaseSnapshot] = field(default_factory=list)
    otherwise: str | None = None
    # update
    attributes: dict[str, Any] | None = None
    lifecycle_stage: str | None = None


@dataclass(frozen=True)
class CampaignSnapshot:
    campaign_id: str
    name: str
    version: int
    content_hash: str
    category: str
    topic: str | None = None
    steps: list[StepSnapshot] = field(default_factory=list)
    exit_on: list[str] = field(default_factory=list)
    goal_event: str | None = None
    goal_within_seconds: int | None = None
    # A stage-triggered journey ends when the contact leaves that stage.
    trigger_stage: str | None = None
    # "Name <address>" of the campaign's emails; None: the house default in policy.yaml.
    sender: str | None = None
    reply_to: str | None = None


@dataclass(frozen=True)
class JourneyInput:
    campaign: CampaignSnapshot
    contact_id: str
    entry_key: str
    trigger_event_id: str | None = None
    holdout: bool = False


@dataclass
class StepOutcome:
    step_id: str
    status: str
    channel: str | None = None
    reason: str | None = None


@dataclass
class JourneyState:
    current_step: str | None = None
    history: list[StepOutcome] = field(default_factory=list)
    ended_by: str | None = None  # "completed", "exit:<event>", "goal", "stage_left", "exit_step"


@dataclass
class JourneyResult:
    history: list[StepOutcome]
    ended_by: str
