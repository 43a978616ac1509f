"""One event in, as `POST /v1/events` and `carecast events send` take it: recorded, then told to Temporal."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from carecast.intake.record import IncomingEvent, Recorded, record_event
from carecast.intake.relay import Relay
from workflows.journey.contract import HISTORY_LIMIT


@dataclass
class IngestResult:
    event_id: str
    duplicate: bool
    started: list[str] = field(default_factory=list)  # journeys this event enrolled, now known to Temporal
    already_running: list[str] = field(default_factory=list)
    not_entered: dict[str, str] = field(default_factory=dict)  # campaign id -> reason
    signalled: list[str] = field(default_factory=list)  # running journeys told of it
    # Journeys to start or tell once Temporal answers: the relay in every worker does it.
    queued: list[str] = field(default_factory=list)


def record(sessions: sessionmaker[Session], event: IncomingEvent, now: datetime | None = None) -> Recorded:
    with sessions.begin() as session:
        return record_event(session, event, now)


async def ingest_event(
    client: Client | None,
    sessions: sessionmaker[Session],
    task_queue: str,
    event: IncomingEvent,
    history_limit: int = HISTORY_LIMIT,
    settle_later: bool = False,
    now: datetime | None = None,
) -> IngestResult:
    """Records the event (in a thread: the store never blocks the event loop), then starts and signals.

    With no client (Temporal did not answer), everything is queued for the relay. A server
    taking event after event passes `settle_later`: what the delivery leaves to write goes
    with the next event's transaction (carecast/intake/settlement.py). `now` is when it is
    received (the wall clock unless a simulation says otherwise).
    """
    recorded = await asyncio.to_thread(record, sessions, event, now)
    result = IngestResult(recorded.event_id, recorded.duplicate, already_running=recorded.already_running,
                          not_entered=recorded.not_entered)  # fmt: skip
    if client is None:
        result.queued = recorded.enrolled + recorded.routed
        return result
    report = await Relay(client, sessions, task_queue, history_limit).deliver(recorded.outgoing, settle_later)
    # Enrolled and told: started by this event, or by one racing it that reached Temporal first.
    result.started = [w for w in recorded.enrolled if w not in report.waiting]
    result.signalled = [w for w in recorded.routed if w in report.delivered]
    result.queued = [w for w in recorded.enrolled + recorded.routed if w in report.waiting]
    return result
