"""What a journey is started with, what it reports, and how it is named. Shared by enrolment and the workflow.

Kept out of workflows/journey.py: the sandbox runs a workflow's own module afresh
for every workflow it creates, and building these data classes there cost about
ten milliseconds of CPU per journey.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from carecast.campaign.snapshot import CampaignSnapshot


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


def journey_workflow_id(campaign_id: str, contact_id: str, entry_key: str) -> str:
    return f"journey/{campaign_id}/{contact_id}/{entry_key}"


def journey_summary(campaign: CampaignSnapshot, contact_id: str) -> str:
    return f"{campaign.campaign_id} · contact {contact_id} · v{campaign.version}"
