"""What to simulate: a contact, the events that happen to them and when, and for how long.

Offsets count from the start of the simulation: `0d`, `2d3h`, `90m`, `1w`. On the command
line an event is `NAME[:JSON]@OFFSET` (`order_placed:{"order_id":"A-1"}@2d3h`); in a file it
is `{event: order_placed, at: 2d3h, data: {order_id: A-1}}`. A contact described in a file
takes the fields `PUT /v1/contacts/{id}` takes, and an optional `id`.

A simulation starts now, or at a given start: `monday 09:00` (the next one, in the contact's
own zone) or a date and time (`2027-01-04T09:00`, the contact's zone unless it says its offset).
Campaign tests start on a Monday at 09:00 unless they say otherwise, so they mean the same at
every hour they are run.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import BeforeValidator, Field, PlainSerializer, ValidationError

from activities.journey_steps import next_local_time  # the journeys' own `wait_until` arithmetic
from carecast.campaign.documents import InvalidFile, load_model
from carecast.campaign.durations import format_duration, parse_duration
from carecast.campaign.patterns import IDENTIFIER, describe
from carecast.campaign.steps.wait_until import WEEKDAYS
from carecast.contacts.schema import CONTACT_ID, ContactFields, Strict, first_error

DEFAULT_WEEKS = 3
MAX_WEEKS = 52
SIMULATED_CONTACT = "simulated"
_ZERO = re.compile(r"^(?:0+[wdhms])+$")
_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
WEEKDAY_NAMES = {**dict(zip(WEEKDAYS, WEEKDAYS, strict=True)), **dict(zip(_DAY_NAMES, WEEKDAYS, strict=True))}
_WEEKDAY_TIME = re.compile(r"^([a-z]+)\s+([01]\d|2[0-3]):([0-5]\d)$", re.IGNORECASE)
START_SHAPE = "write a weekday and a time (monday 09:00) or a date and time (2027-01-04T09:00)"


class ScenarioError(ValueError):
    """A scenario that cannot be run, with what to write instead."""


def parse_offset(text: str) -> timedelta:
    """`2d3h` → 2 days 3 hours after the start; `0d` is the start itself."""
    compact = str(text).strip().replace(" ", "")
    if _ZERO.match(compact):
        return timedelta()
    try:
        return parse_duration(compact)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an offset; write how long after the start, e.g. 0d, 90m, 2d3h or 1w"
        ) from None


def _coerce_offset(value: object) -> object:
    if isinstance(value, str):
        return parse_offset(value)
    if not isinstance(value, timedelta):  # a bare 2 would be read as seconds
        raise ValueError(f"{value!r} is not an offset; write it with its unit, e.g. 0d, 90m, 2d3h or 1w")
    return value


Offset = Annotated[timedelta, BeforeValidator(_coerce_offset), PlainSerializer(format_duration, return_type=str)]


class ScheduledEvent(Strict):
    """One event of the contact, at its offset from the start."""

    event: str = Field(pattern=IDENTIFIER, description="the event's name, e.g. order_placed")
    at: Offset = Field(default=timedelta(), description="when, after the start: 0d, 90m, 2d3h, 1w")
    data: dict[str, Any] = Field(default_factory=dict, description="the event's data, as POST /v1/events takes it")


class Profile(ContactFields):
    """A contact that is not in the store: the fields of `PUT /v1/contacts/{id}`, and an optional id."""

    id: str = Field(default=SIMULATED_CONTACT, pattern=CONTACT_ID)


class EventsFile(Strict):
    events: list[ScheduledEvent]


def parse_event(spec: str) -> ScheduledEvent:
    """`NAME[:JSON]@OFFSET`, as `--event` takes it."""
    shape = 'write NAME[:JSON]@OFFSET, e.g. signed_up@0d or order_placed:{"order_id":"A-1"}@2d3h'
    if "@" not in spec:
        raise ScenarioError(f"--event {spec!r}: no @OFFSET; {shape}")
    head, offset = spec.rsplit("@", 1)
    name, _, raw = head.partition(":")
    if not re.match(IDENTIFIER, name):
        raise ScenarioError(f"--event {spec!r}: {name!r} is not an event name: {describe(IDENTIFIER)}")
    data: Any = {}
    if raw:
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            problem = f"its data is not JSON ({exc.msg} at column {exc.pos + 1})"
            raise ScenarioError(f"--event {spec!r}: {problem}; {shape}") from None
        if not isinstance(data, dict):
            raise ScenarioError(f"--event {spec!r}: its data must be a JSON object, {{...}}; {shape}")
    try:
        return ScheduledEvent(event=name, at=offset, data=data)
    except ValidationError as exc:
        raise ScenarioError(f"--event {spec!r}: {first_error(exc)}") from None


def load_events(path: Path) -> list[ScheduledEvent]:
    """An events file: `events: [{event: signed_up, at: 0d}, ...]`; errors at their line."""
    try:
        return load_model(path, EventsFile).events
    except InvalidFile as exc:
        raise ScenarioError(str(exc)) from None


def load_profile(path: Path) -> Profile:
    try:
        return load_model(path, Profile)
    except InvalidFile as exc:
        raise ScenarioError(str(exc)) from None


def horizon(weeks: float) -> timedelta:
    if not 0 < weeks <= MAX_WEEKS:
        raise ScenarioError(f"--weeks {weeks:g}: simulate between a moment and {MAX_WEEKS} weeks")
    return timedelta(weeks=weeks)


def events_within(events: list[ScheduledEvent], length: timedelta) -> None:
    """Refuses an event after the end: it would never be seen to do anything."""
    for scheduled in events:
        if scheduled.at > length:
            raise ScenarioError(
                f"event {scheduled.event} at {format_duration(scheduled.at)} is after the end of the simulation "
                f"({format_duration(length)}): simulate longer, or move the event"
            )


def _weekday_time(text: str) -> tuple[str, str] | None:
    """`monday 09:00` → ("mon", "09:00"); None for anything else."""
    found = _WEEKDAY_TIME.match(text.strip())
    if found is None or found[1].lower() not in WEEKDAY_NAMES:
        return None
    return WEEKDAY_NAMES[found[1].lower()], f"{found[2]}:{found[3]}"


def check_start(text: str) -> str:
    """A start as a marketer writes it, checked (its moment depends on when and for whom it runs)."""
    if _weekday_time(text) is not None:
        return text
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise ScenarioError(f"start {text!r}: {START_SHAPE}") from None
    return text


def start_moment(text: str | None, now: datetime, tz: ZoneInfo) -> datetime:
    """When a simulation given `text` starts, seen at `now` (the server's) by a contact in `tz`."""
    if text is None:
        return now
    if (weekly := _weekday_time(text)) is not None:
        day, time_of_day = weekly
        return next_local_time(now, tz, time_of_day, [day])
    moment = datetime.fromisoformat(text)
    moment = (moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)).astimezone(UTC)
    if moment < now:
        raise ScenarioError(f"start {text!r} is in the past: a simulation runs forward from now; {START_SHAPE}")
    return moment


StartAt = Annotated[str, BeforeValidator(lambda value: check_start(str(value)))]
