"""From an event to journeys: store it once, then start each campaign it triggers.

Starting is idempotent by workflow id (`journey/<campaign>/<contact>/<entry key>`),
so a repeated event, or a retry after a crash between storing and starting,
never enrols a contact twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from carecast.spec.snapshot import CampaignSnapshot
from carecast.store.campaigns import snapshots_triggered_by
from carecast.store.models import Contact, Event, utcnow
from carecast.store.writes import upsert
from workflows import search_attributes as sa
from workflows.journey import JourneyInput, JourneyWorkflow, journey_summary, journey_workflow_id


class UnknownContactError(LookupError):
    def __init__(self, contact_id: str) -> None:
        super().__init__(f"no contact with id {contact_id!r}; import or create it before sending its events")
        self.contact_id = contact_id


@dataclass(frozen=True)
class IncomingEvent:
    event_id: str
    contact_id: str
    name: str
    occurred_at: datetime
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class EnrolmentResult:
    event_id: str
    duplicate: bool
    started: list[str] = field(default_factory=list)
    already_running: list[str] = field(default_factory=list)


def store_event(session: Session, event: IncomingEvent) -> bool:
    """Stores the event unless its id is known; returns True when it was a duplicate."""
    if session.get(Contact, event.contact_id) is None:
        raise UnknownContactError(event.contact_id)
    row = dict(
        event_id=event.event_id,
        contact_id=event.contact_id,
        name=event.name,
        occurred_at=event.occurred_at,
        received_at=utcnow(),
        data=event.data,
    )
    return upsert(session, Event, [row], conflict_columns=["event_id"]) == 0


async def start_journey(
    client: Client, task_queue: str, campaign: CampaignSnapshot, event: IncomingEvent
) -> tuple[str, bool]:
    """Starts the journey for this entry; returns (workflow id, started now)."""
    entry_key = event.event_id
    workflow_id = journey_workflow_id(campaign.campaign_id, event.contact_id, entry_key)
    try:
        await client.start_workflow(
            JourneyWorkflow.run,
            JourneyInput(
                campaign=campaign, contact_id=event.contact_id, entry_key=entry_key, trigger_event_id=event.event_id
            ),
            id=workflow_id,
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(sa.CAMPAIGN_ID, campaign.campaign_id),
                    SearchAttributePair(sa.CAMPAIGN_VERSION, str(campaign.version)),
                    SearchAttributePair(sa.CONTACT_ID, event.contact_id),
                    SearchAttributePair(sa.CAMPAIGN_STEP, campaign.steps[0].id),
                    SearchAttributePair(sa.CATEGORY, campaign.category),
                ]
            ),
            static_summary=journey_summary(campaign, event.contact_id),
            static_details=(
                f"{campaign.name} ({campaign.category}), version {campaign.version}, "
                f"entered on event {event.name} {event.event_id}"
            ),
        )
    except WorkflowAlreadyStartedError:
        return workflow_id, False
    return workflow_id, True


async def ingest_event(
    client: Client, sessions: sessionmaker[Session], task_queue: str, event: IncomingEvent
) -> EnrolmentResult:
    with sessions.begin() as session:
        duplicate = store_event(session, event)
        campaigns = snapshots_triggered_by(session, event.name)
    result = EnrolmentResult(event_id=event.event_id, duplicate=duplicate)
    for campaign in campaigns:
        workflow_id, started = await start_journey(client, task_queue, campaign, event)
        (result.started if started else result.already_running).append(workflow_id)
    return result
