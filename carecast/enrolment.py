"""From an event to journeys: store it once, steer running journeys, enrol into new ones.

1. The event is stored once per event id.
2. Running journeys of the contact that wait for, exit on, or convert on this
   event receive it as a signal.
3. Each deployed journey triggered by it checks its entry filter, re-entry rule
   and holdout, records the enrolment, and starts `journey/<campaign>/<contact>/<entry key>`.
   Starting is idempotent by that id, so a repeated event, or a retry after a
   crash between recording and starting, never enrols a contact twice.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from carecast.campaign.model import Campaign, ReentryAfter
from carecast.campaign.snapshot import snapshot
from carecast.contacts.views import contact_facts
from carecast.filters.evaluate import matches
from carecast.filters.model import parse_filter
from carecast.store.models import CampaignVersion, Contact, Enrolment, Event, utcnow
from carecast.store.writes import upsert
from workflows import search_attributes as sa
from workflows.contracts import STAGE_ENTERED, STAGE_LEFT, JourneyEvent
from workflows.journey import JourneyWorkflow
from workflows.journey_contract import JourneyInput, journey_summary, journey_workflow_id


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
    not_entered: dict[str, str] = field(default_factory=dict)  # campaign id -> reason
    signalled: list[str] = field(default_factory=list)


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


def in_holdout(campaign_id: str, contact_id: str, percent: float) -> bool:
    """A stable choice: the same contact is always in or out of a campaign's control group."""
    if percent <= 0:
        return False
    digest = hashlib.sha256(f"{campaign_id}:{contact_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10_000 < percent * 100


@lru_cache(maxsize=256)
def _parsed(content_hash: str, spec_json: str) -> Campaign:
    """A stored spec parsed once; keyed by content, so every worker agrees on what it holds."""
    return Campaign.model_validate_json(spec_json)


def active_campaigns(session: Session) -> list[tuple[Campaign, int]]:
    rows = session.execute(
        select(CampaignVersion.content_hash, CampaignVersion.spec, CampaignVersion.version).where(
            CampaignVersion.active.is_(True)
        )
    )
    return [(_parsed(content_hash, json.dumps(spec, sort_keys=True)), version) for content_hash, spec, version in rows]


def listens_to(campaign: Campaign, event_name: str) -> bool:
    """Whether a running journey of this campaign reacts to the event."""
    return event_name in campaign.listens_to()


def triggered_by(campaign: Campaign, event: IncomingEvent) -> bool:
    trigger = campaign.trigger
    if trigger is None:
        return False
    if trigger.stage is not None:
        return event.name == STAGE_ENTERED and event.data.get("stage") == trigger.stage
    return trigger.event == event.name


@dataclass(frozen=True)
class Entry:
    key: str | None
    reason: str | None  # why the contact does not enter, when key is None


def entry_for(session: Session, campaign: Campaign, contact: Contact, event: IncomingEvent, now: datetime) -> Entry:
    entry = campaign.entry
    if entry.when is not None and not matches(
        parse_filter(entry.when, allow_event=True), contact_facts(contact), now, event.data
    ):
        return Entry(None, "entry_filter")
    if entry.key is not None:
        if event.data.get(entry.key) in (None, ""):
            return Entry(None, f"no_entry_key:{entry.key}")
        key = str(event.data[entry.key])
    else:
        key = event.event_id
    earlier = session.scalars(
        select(Enrolment).where(
            Enrolment.campaign_id == campaign.id, Enrolment.contact_id == contact.id, Enrolment.entry_key != key
        )
    ).all()
    if entry.reentry == "never" and earlier:
        return Entry(None, "already_enrolled")
    if isinstance(entry.reentry, ReentryAfter) and any(e.enrolled_at > now - entry.reentry.after for e in earlier):
        return Entry(None, "reentry_too_soon")
    return Entry(key, None)


async def start_journey(client: Client, task_queue: str, journey: JourneyInput, event: IncomingEvent) -> bool:
    """Starts the journey; False when a journey with its id already exists."""
    campaign = journey.campaign
    try:
        await client.start_workflow(
            JourneyWorkflow.run,
            journey,
            id=journey_workflow_id(campaign.campaign_id, journey.contact_id, journey.entry_key),
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(sa.CAMPAIGN_ID, campaign.campaign_id),
                    SearchAttributePair(sa.CAMPAIGN_VERSION, str(campaign.version)),
                    SearchAttributePair(sa.CONTACT_ID, journey.contact_id),
                    SearchAttributePair(sa.CAMPAIGN_STEP, campaign.steps[0].id),
                    SearchAttributePair(sa.CATEGORY, campaign.category),
                ]
            ),
            static_summary=journey_summary(campaign, journey.contact_id),
            static_details=(
                f"{campaign.name} ({campaign.category}), version {campaign.version}, entered on event "
                f"{event.name} {event.event_id}" + (" — holdout: nothing is sent" if journey.holdout else "")
            ),
        )
    except WorkflowAlreadyStartedError:
        return False
    return True


def listening_journeys(session: Session, campaigns: list[Campaign], event: IncomingEvent) -> list[str]:
    """Workflow ids of the contact's journeys whose campaign reacts to this event."""
    listening = [c.id for c in campaigns if c.is_journey and listens_to(c, event.name)]
    if not listening:
        return []
    return list(
        session.scalars(
            select(Enrolment.workflow_id).where(
                Enrolment.contact_id == event.contact_id, Enrolment.campaign_id.in_(listening)
            )
        )
    )


async def signal_journeys(client: Client, workflow_ids: list[str], event: IncomingEvent) -> list[str]:
    signalled = []
    for workflow_id in workflow_ids:
        try:
            await client.get_workflow_handle(workflow_id).signal(
                JourneyWorkflow.event,
                JourneyEvent(name=event.name, event_id=event.event_id, stage=event.data.get("stage")),
            )
            signalled.append(workflow_id)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:  # finished journeys do not listen any more
                raise
    return signalled


async def ingest_event(
    client: Client, sessions: sessionmaker[Session], task_queue: str, event: IncomingEvent
) -> EnrolmentResult:
    now = utcnow()
    with sessions.begin() as session:
        duplicate = store_event(session, event)
        deployed = active_campaigns(session)
        contact = session.get(Contact, event.contact_id)
        result = EnrolmentResult(event_id=event.event_id, duplicate=duplicate)
        to_signal = listening_journeys(session, [c for c, _ in deployed], event)
        journeys: list[JourneyInput] = []
        for campaign, version in deployed:
            if not triggered_by(campaign, event):
                continue
            entry = entry_for(session, campaign, contact, event, now)
            if entry.key is None:
                result.not_entered[campaign.id] = entry.reason
                continue
            journey = JourneyInput(
                campaign=snapshot(campaign, version),
                contact_id=contact.id,
                entry_key=entry.key,
                trigger_event_id=event.event_id,
                holdout=in_holdout(campaign.id, contact.id, campaign.holdout),
            )
            workflow_id = journey_workflow_id(campaign.id, contact.id, entry.key)
            upsert(
                session,
                Enrolment,
                [
                    dict(
                        campaign_id=campaign.id,
                        campaign_version=version,
                        contact_id=contact.id,
                        entry_key=entry.key,
                        workflow_id=workflow_id,
                        holdout=journey.holdout,
                        enrolled_at=now,
                    )  # fmt: skip
                ],
                conflict_columns=["campaign_id", "contact_id", "entry_key"],
            )
            journeys.append(journey)
    result.signalled = await signal_journeys(client, to_signal, event)
    for journey in journeys:
        workflow_id = journey_workflow_id(journey.campaign.campaign_id, journey.contact_id, journey.entry_key)
        started = await start_journey(client, task_queue, journey, event)
        (result.started if started else result.already_running).append(workflow_id)
    return result


async def announce_stage_change(
    client: Client,
    sessions: sessionmaker[Session],
    task_queue: str,
    contact_id: str,
    old: str | None,
    new: str | None,
    occasion: str,
) -> None:
    """Emits stage_left / stage_entered for a move; `occasion` makes the event ids unique and repeatable."""
    for name, stage in ((STAGE_LEFT, old), (STAGE_ENTERED, new)):
        if stage is not None:
            event = IncomingEvent(
                f"{name}/{contact_id}/{stage}/{occasion}", contact_id, name, utcnow(), {"stage": stage}
            )
            await ingest_event(client, sessions, task_queue, event)
