"""An outbox row as the relay delivers it: whom to tell what, and how to start the journey if need be."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from carecast.store.campaigns import PAUSED, STOPPED, DeployedVersion, campaign_states, stored_version
from carecast.store.models import CampaignControl, Enrolment, JourneySignal
from workflows.journey.contract import JourneyEvent

# Rows written are delivered by their writer at once; the relay loop leaves them alone this long.
FAST_PATH_LEASE = timedelta(seconds=15)


@dataclass(frozen=True)
class JourneyStart:
    """What a journey not started yet is started with (the relay adds what it is configured with)."""

    deployed: DeployedVersion
    enrolment_id: int
    contact_id: str
    entry_key: str
    trigger_event_id: str | None
    holdout: bool
    entered_at: datetime
    paused: bool
    heard_first: tuple[JourneyEvent, ...] = ()  # its events waiting in the outbox, told at its start


@dataclass(frozen=True)
class Outgoing:
    id: int
    enrolment_id: int
    workflow_id: str
    kind: str  # event, stop, pause, resume
    signal_key: str  # the event id, or the control's own id
    event_name: str | None
    stage: str | None
    occurred_at: datetime | None  # when the event happened, or when the operator's control was given
    attempts: int
    started: bool
    ended: bool
    stopped: bool  # its campaign is stopped: a journey not started yet is not started at all
    start: JourneyStart | None  # for a journey not started yet
    reason: str | None = None  # of a pause: why its campaign was paused


def start_of(
    session: Session, enrolment, state: str | None, heard_first: tuple[JourneyEvent, ...] | None = None
) -> JourneyStart | None:
    """How to start an enrolment's journey, or None when it started (or its version is gone).

    The journey starts knowing every event waiting for it in the outbox (`heard_first`, read
    from the store unless given), so it makes no difference which of its rows starts it.
    """
    if enrolment.started_at is not None:
        return None
    deployed = stored_version(session, enrolment.campaign_id, enrolment.campaign_version)
    if deployed is None:
        return None
    if heard_first is None:
        waiting = session.execute(
            select(JourneySignal.event_name, JourneySignal.signal_key, JourneySignal.stage, JourneySignal.occurred_at)
            .where(JourneySignal.enrolment_id == enrolment.id, JourneySignal.kind == "event")
            .order_by(JourneySignal.id)
        )
        heard_first = tuple(JourneyEvent(*row) for row in waiting if row.signal_key != enrolment.trigger_event_id)
    return JourneyStart(deployed, enrolment.id, enrolment.contact_id, enrolment.entry_key,
                        enrolment.trigger_event_id, enrolment.holdout, enrolment.enrolled_at,
                        paused=state == PAUSED, heard_first=heard_first)  # fmt: skip


def load_outgoing(session: Session, ids: list[int]) -> list[Outgoing]:
    """The rows with these ids, in order, with their enrolments as they are now."""
    found = session.execute(
        select(JourneySignal, Enrolment)
        .join(Enrolment, Enrolment.id == JourneySignal.enrolment_id)
        .where(JourneySignal.id.in_(ids))
        .order_by(JourneySignal.id)
    ).all()
    states = campaign_states(session, {e.campaign_id for _, e in found})
    paused = {e.campaign_id for s, e in found if s.kind == "pause"}
    reasons = dict(session.execute(
        select(CampaignControl.campaign_id, CampaignControl.reason).where(CampaignControl.campaign_id.in_(paused))
    ).all()) if paused else {}  # fmt: skip
    return [
        Outgoing(
            id=signal.id,
            enrolment_id=enrolment.id,
            workflow_id=signal.workflow_id,
            kind=signal.kind,
            signal_key=signal.signal_key,
            event_name=signal.event_name,
            stage=signal.stage,
            occurred_at=signal.occurred_at,
            attempts=signal.attempts,
            started=enrolment.started_at is not None,
            ended=enrolment.ended_at is not None,
            stopped=states.get(enrolment.campaign_id) == STOPPED,
            start=start_of(session, enrolment, states.get(enrolment.campaign_id)),
            reason=reasons.get(enrolment.campaign_id) if signal.kind == "pause" else None,
        )  # fmt: skip
        for signal, enrolment in found
    ]
