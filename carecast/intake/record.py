"""Recording an event: stored once, routed to its journeys, enrolling, all in the caller's transaction.

Routing: an event reaches the contact's running journeys whose version listens to it
(recorded on the enrolment), and when the journey has an entry key and the event
carries that field, only the journey of that key. An event without the field reaches
all of the contact's journeys of that campaign.

Enrolment: each active journey campaign triggered by the event checks its entry
filter and re-entry rule under the contact's lock (so concurrent events cannot both
enter a `reentry: never` campaign), and records the enrolment. Nothing here calls
Temporal: every journey to start or signal gets an outbox row (JourneySignal) in the
same transaction, which the relay delivers.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.orm import Session

from carecast.campaign.model import STAGE_ENTERED, STAGE_LEFT, Campaign, ReentryAfter
from carecast.contacts.views import contact_facts
from carecast.filters.evaluate import matches
from carecast.filters.model import parse_filter
from carecast.intake.outgoing import FAST_PATH_LEASE, JourneyStart, Outgoing, start_of
from carecast.intake.settlement import write_waiting
from carecast.store.campaigns import PAUSED, STOPPED, active_versions, campaign_states
from carecast.store.models import Contact, Enrolment, Event, JourneySignal, utcnow
from carecast.store.writes import insert_new, lock_contact_rows, upsert
from workflows.journey.contract import JourneyEvent, journey_workflow_id

# Entry-key values that may go into a workflow id as they are; others are hashed there.
SAFE_KEY = re.compile(r"[A-Za-z0-9_.-]{1,64}")


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
class Recorded:
    """What recording an event decided; `signals` are the outbox rows for the relay to deliver."""

    event_id: str
    duplicate: bool
    enrolled: list[str] = field(default_factory=list)  # workflow ids of new enrolments
    already_running: list[str] = field(default_factory=list)
    not_entered: dict[str, str] = field(default_factory=dict)  # campaign id -> reason
    routed: list[str] = field(default_factory=list)  # workflow ids of running journeys told of it
    outgoing: list[Outgoing] = field(default_factory=list)  # the outbox rows written, ready for the relay

    @property
    def signals(self) -> list[int]:
        return [row.id for row in self.outgoing]


def entry_key_of(value: Any) -> str:
    """The form of an entry key that goes into workflow ids: as given when short and safe, else hashed."""
    text = str(value)
    return text if SAFE_KEY.fullmatch(text) else "~" + hashlib.sha256(text.encode()).hexdigest()[:32]


def in_holdout(campaign_id: str, contact_id: str, percent: float) -> bool:
    """A stable choice: the same contact is always in or out of a campaign's control group."""
    if percent <= 0:
        return False
    digest = hashlib.sha256(f"{campaign_id}:{contact_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10_000 < percent * 100


def triggered_by(campaign: Campaign, event: IncomingEvent) -> bool:
    trigger = campaign.trigger
    if trigger is None:
        return False
    if trigger.stage is not None:
        return event.name == STAGE_ENTERED and event.data.get("stage") == trigger.stage
    return trigger.event == event.name


def hears(enrolment, event: IncomingEvent) -> bool:
    """Whether a running journey's own version listens to this event, for its entry key."""
    return _hears(enrolment.listens_to, enrolment.key_field, enrolment.entry_key, event)


def _hears(listens_to: list[str], key_field: str | None, entry_key: str, event: IncomingEvent) -> bool:
    if event.name not in listens_to:
        return False
    if key_field is None or event.data.get(key_field) in (None, ""):
        return True
    return entry_key_of(event.data[key_field]) == entry_key


RUNNING_ENROLMENTS = select(
    Enrolment.id, Enrolment.workflow_id, Enrolment.campaign_id, Enrolment.campaign_version, Enrolment.contact_id,
    Enrolment.entry_key, Enrolment.key_field, Enrolment.listens_to, Enrolment.trigger_event_id, Enrolment.holdout,
    Enrolment.started_at, Enrolment.enrolled_at,
).where(Enrolment.contact_id == bindparam("contact_id"), Enrolment.ended_at.is_(None))  # fmt: skip


def record_event(session: Session, event: IncomingEvent, now: datetime | None = None) -> Recorded:
    """Stores the event once, routes it and enrols, writing the outbox rows; in the caller's transaction."""
    now = now or utcnow()
    # The contact's lock makes routing and the re-entry check see every enrolment committed before.
    contact = lock_contact_rows(session, [event.contact_id]).get(event.contact_id)
    if contact is None:
        raise UnknownContactError(event.contact_id)
    # What this process's last deliveries left to write goes with this transaction, not one more of its own
    # (lost if this one rolls back, which costs a repeated delivery and nothing else).
    write_waiting(session)
    stored = dict(event_id=event.event_id, contact_id=event.contact_id, name=event.name,
                  occurred_at=event.occurred_at, received_at=now, data=event.data)  # fmt: skip
    if upsert(session, Event, [stored], conflict_columns=["event_id"]) == 0:
        again = session.scalars(select(Enrolment.workflow_id).where(Enrolment.trigger_event_id == event.event_id))
        return Recorded(event.event_id, duplicate=True, already_running=list(again))
    recorded = Recorded(event.event_id, duplicate=False)
    # (the signal row, and what the relay needs to deliver it), for each journey to tell
    told: list[tuple[dict[str, Any], Any, JourneyStart | None]] = []
    listening = [e for e in session.execute(RUNNING_ENROLMENTS, {"contact_id": contact.id}) if hears(e, event)]
    not_started = campaign_states(session, {e.campaign_id for e in listening if e.started_at is None})
    for enrolment in listening:
        start = start_of(session, enrolment, not_started.get(enrolment.campaign_id))
        told.append((_signal(enrolment.id, enrolment.workflow_id, event, now), enrolment.started_at, start))
        recorded.routed.append(enrolment.workflow_id)
    for deployed in active_versions(session):
        campaign, state = deployed.campaign, deployed.state
        if not (campaign.is_journey and triggered_by(campaign, event)):
            continue
        if state == STOPPED:
            recorded.not_entered[campaign.id] = "campaign_stopped"
            continue
        key, reason = _entry(session, campaign, contact, event, now)
        if key is None:
            recorded.not_entered[campaign.id] = reason
            continue
        workflow_id = journey_workflow_id(campaign.id, contact.id, key)
        holdout = in_holdout(campaign.id, contact.id, campaign.holdout)
        row = dict(campaign_id=campaign.id, campaign_version=deployed.version, contact_id=contact.id, entry_key=key,
                   key_field=campaign.entry.key, listens_to=campaign.listens_to(), workflow_id=workflow_id,
                   trigger_event_id=event.event_id, holdout=holdout, enrolled_at=now,
                   goal_by=now + campaign.goal.within if campaign.goal is not None else None)  # fmt: skip
        enrolment_id = insert_new(session, Enrolment, row, ["campaign_id", "contact_id", "entry_key"], Enrolment.id)
        if enrolment_id is None:
            recorded.already_running.append(workflow_id)  # the same entry again: its journey runs already
            continue
        # An exit that won the race to the store: the journey starts knowing it (whichever row starts it),
        # so it ends before its first step and sends nothing.
        earlier = _arrived_first(session, row, event)
        heard_first = tuple(JourneyEvent(e.name, e.event_id, e.data.get("stage"), e.occurred_at) for e in earlier)
        start = JourneyStart(deployed, enrolment_id, contact.id, key, event.event_id, holdout, now,
                             paused=state == PAUSED, heard_first=heard_first)  # fmt: skip
        told.append((_signal(enrolment_id, workflow_id, event, now), None, start))
        told += [(_signal(enrolment_id, workflow_id, e, now), None, start) for e in earlier]
        recorded.enrolled.append(workflow_id)
    if told:
        ids = session.scalars(insert(JourneySignal).returning(JourneySignal.id, sort_by_parameter_order=True),
                              [signal for signal, _, _ in told]).all()  # fmt: skip
        recorded.outgoing = [
            _outgoing(row_id, signal, started_at, start)
            for row_id, (signal, started_at, start) in zip(ids, told, strict=True)
        ]
    return recorded


def _arrived_first(session: Session, enrolment: dict[str, Any], trigger: IncomingEvent) -> list[IncomingEvent]:
    """Events the new journey listens to that happened with or after its trigger but were recorded before it.

    An exit sent in the same instant as its trigger may win the race to the store; the
    journey hears it all the same (and ends at once), rather than run as if it never came.
    """
    if not enrolment["listens_to"]:
        return []
    rows = session.execute(
        select(Event.event_id, Event.name, Event.occurred_at, Event.data).where(
            Event.contact_id == trigger.contact_id,
            Event.name.in_(enrolment["listens_to"]),
            Event.occurred_at >= trigger.occurred_at,
            Event.event_id != trigger.event_id,
        )
    ).all()
    earlier = [IncomingEvent(event_id, trigger.contact_id, name, at, data or {}) for event_id, name, at, data in rows]
    return [e for e in earlier if _hears(enrolment["listens_to"], enrolment["key_field"], enrolment["entry_key"], e)]


def record_stage_move(
    session: Session, contact_id: str, old: str | None, new: str | None, occasion: str, now: datetime | None = None
) -> list[int]:
    """Records stage_left / stage_entered for a move, in the transaction that made it; the outbox rows.

    `occasion` makes the event ids unique to the move and the same on every retry of it.
    """
    signals: list[int] = []
    move = hashlib.sha256(f"{contact_id}/{occasion}".encode()).hexdigest()[:16]
    for name, stage in ((STAGE_LEFT, old), (STAGE_ENTERED, new)):
        if stage is not None:
            # Safe as it is in a stage journey's workflow id: journey/win_back/c1/stage_entered.lapsed.<move>
            event = IncomingEvent(f"{name}.{stage}.{move}", contact_id, name, now or utcnow(), {"stage": stage})
            signals += record_event(session, event, now).signals
    return signals


def record_stage_moves(
    session: Session, moves: list[tuple[str, str | None, str | None]], occasion: str, now: datetime | None = None
) -> list[int]:
    """`record_stage_move` for each (contact id, old stage, new stage) a write made."""
    return [
        signal
        for contact_id, old, new in moves
        for signal in record_stage_move(session, contact_id, old, new, occasion, now)
    ]


# Why an event did not enter a contact into a journey it triggers: the codes `not_entered` holds, in words.
NOT_ENTERED_WORDS = {
    "campaign_stopped": "the campaign is stopped",
    "entry_filter": "the contact or the event does not match its entry filter",
    "already_enrolled": "the contact entered it once already, and it is entered only once (reentry: never)",
    "reentry_too_soon": "the contact entered it too recently to enter again (its reentry: after)",
}


def not_entered_words(reason: str) -> str:
    if reason.startswith("no_entry_key:"):
        return f"the event has no {reason.removeprefix('no_entry_key:')}, which keys its journeys"
    return NOT_ENTERED_WORDS.get(reason, reason)


def _entry(
    session: Session, campaign: Campaign, contact: Contact, event: IncomingEvent, now: datetime
) -> tuple[str | None, str | None]:
    """(entry key, None) when the contact enters; (None, why not) otherwise."""
    entry = campaign.entry
    if entry.when is not None and not matches(
        parse_filter(entry.when, allow_event=True), contact_facts(contact), now, event.data
    ):
        return None, "entry_filter"
    if entry.key is not None:
        if event.data.get(entry.key) in (None, ""):
            return None, f"no_entry_key:{entry.key}"
        key = entry_key_of(event.data[entry.key])
    else:
        key = entry_key_of(event.event_id)
    if entry.reentry == "always":
        return key, None
    earlier = session.scalars(
        select(Enrolment.enrolled_at).where(
            Enrolment.campaign_id == campaign.id, Enrolment.contact_id == contact.id, Enrolment.entry_key != key
        )
    ).all()
    if entry.reentry == "never" and earlier:
        return None, "already_enrolled"
    if isinstance(entry.reentry, ReentryAfter) and any(at > now - entry.reentry.after for at in earlier):
        return None, "reentry_too_soon"
    return key, None


def _outgoing(row_id: int, signal: dict[str, Any], started_at, start: JourneyStart | None) -> Outgoing:
    return Outgoing(
        id=row_id, enrolment_id=signal["enrolment_id"], workflow_id=signal["workflow_id"], kind="event",
        signal_key=signal["signal_key"], event_name=signal["event_name"], stage=signal["stage"],
        occurred_at=signal["occurred_at"], attempts=0, started=started_at is not None, ended=False, stopped=False,
        start=start,
    )  # fmt: skip


def _signal(enrolment_id: int, workflow_id: str, event: IncomingEvent, now: datetime) -> dict[str, Any]:
    return dict(enrolment_id=enrolment_id, workflow_id=workflow_id, kind="event", signal_key=event.event_id,
                event_name=event.name, stage=event.data.get("stage"), occurred_at=event.occurred_at, created_at=now,
                next_attempt_at=now + FAST_PATH_LEASE, attempts=0)  # fmt: skip
