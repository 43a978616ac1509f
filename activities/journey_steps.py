"""Activities for the journey steps that read or change the contact: wait_until, branch, update."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from carecast.campaign.steps.wait_until import WEEKDAYS
from carecast.clock import Clock
from carecast.contacts.views import contact_facts
from carecast.filters.evaluate import matches
from carecast.filters.model import parse_filter
from carecast.intake.record import record_stage_move
from carecast.intake.relay import Relay
from carecast.intake.settlement import Settlement, leave
from carecast.policy.local_time import earliest_instant_for_wall, wall
from carecast.policy.model import HouseRules, rules_source
from carecast.policy.timezones import contact_zone
from carecast.store.models import Contact, Event, utcnow
from workflows.journey.contract import (
    JOURNEY_ENDED,
    MATCH_CASE,
    NEXT_LOCAL_TIME,
    UPDATE_CONTACT,
    JourneyEndedInput,
    MatchCaseInput,
    MatchCaseResult,
    NextLocalTimeInput,
    NextLocalTimeResult,
    UpdateContactInput,
)


def next_local_time(after: datetime, tz, time_of_day: str, weekdays: list[str]) -> datetime:
    """The first instant after `after` that shows `time_of_day` on an allowed weekday in `tz`."""
    hour, minute = (int(part) for part in time_of_day.split(":"))
    local = wall(after, tz)
    for days in range(0, 8):
        day = (local + timedelta(days=days)).replace(hour=hour, minute=minute, second=0, microsecond=0)
        if weekdays and WEEKDAYS[day.weekday()] not in weekdays:
            continue
        instant = earliest_instant_for_wall(day, tz)
        if instant > after:
            return instant
    raise ValueError(f"no {time_of_day} on {weekdays} within a week")  # unreachable: some weekday always comes


class JourneyStepActivities:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        house_rules: HouseRules | Callable[[], HouseRules],
        client: Callable[[], Client] | None = None,
        task_queue: str = "",
        clock: Clock = utcnow,
    ) -> None:
        self.sessions = sessions
        self.rules = rules_source(house_rules)
        self.client = client
        self.task_queue = task_queue
        self.clock = clock

    def _contact(self, session: Session, contact_id: str) -> Contact:
        contact = session.get(Contact, contact_id)
        if contact is None:
            raise ApplicationError(f"contact {contact_id} no longer exists", non_retryable=True, type="UnknownContact")
        return contact

    @activity.defn(name=NEXT_LOCAL_TIME)
    def next_local_time(self, request: NextLocalTimeInput) -> NextLocalTimeResult:
        default_zone = self.rules().default_timezone  # the house rules now, once for the call
        with self.sessions() as session:
            contact = self._contact(session, request.contact_id)
            tz = contact_zone(contact.timezone, contact.phone, default_zone)
        at = next_local_time(request.after, tz, request.time_of_day, request.weekdays)
        return NextLocalTimeResult(at=at, local=f"{at.astimezone(tz):%a %H:%M} {tz.key}")

    @activity.defn(name=MATCH_CASE)
    def match_case(self, request: MatchCaseInput) -> MatchCaseResult:
        with self.sessions() as session:
            facts = contact_facts(self._contact(session, request.contact_id))
            event = None
            if request.trigger_event_id:
                row = session.scalar(select(Event).where(Event.event_id == request.trigger_event_id))
                event = row.data if row else None
        for index, condition in enumerate(request.conditions):
            if matches(parse_filter(condition, allow_event=True), facts, request.now, event):
                return MatchCaseResult(index=index)
        return MatchCaseResult(index=-1)

    @activity.defn(name=JOURNEY_ENDED)
    async def journey_ended(self, request: JourneyEndedInput) -> None:
        """Marks the enrolment ended, so stops and pauses reach only journeys that run (a local activity).

        Written with the worker's next settlement, within a second (and as the worker stops), not
        in a transaction of each journey's own: on SQLite that would queue every ending behind the
        events coming in. Lost only with a crash, it is learnt again the first time something is
        sent to the journey (Temporal answers that it is over).
        """
        leave(self.sessions, Settlement(ended={request.enrolment_id: request.ended_by}))

    @activity.defn(name=UPDATE_CONTACT)
    async def update_contact(self, request: UpdateContactInput) -> None:
        """Sets attributes and stage; a stage move is written with its announcement, then told to Temporal.

        A retry finds the stage already moved and writes nothing new, but the announcement
        of the first attempt is in the outbox all the same: the relay delivers it.
        """
        info = activity.info()
        occasion = request.occasion or f"{info.workflow_id}/{info.activity_id}"
        signals = await asyncio.to_thread(self._update, request, occasion)
        if self.client is not None:
            await Relay(self.client(), self.sessions, self.task_queue).send(signals)

    def _update(self, request: UpdateContactInput, occasion: str) -> list[int]:
        with self.sessions.begin() as session:
            contact = self._contact(session, request.contact_id)
            old = contact.lifecycle_stage
            if request.attributes:
                contact.attributes = {**(contact.attributes or {}), **request.attributes}
            if request.lifecycle_stage:
                contact.lifecycle_stage = request.lifecycle_stage
            if request.lifecycle_stage is None or old == request.lifecycle_stage:
                return []
            session.flush()
            return record_stage_move(session, contact.id, old, request.lifecycle_stage, occasion, self.clock())
