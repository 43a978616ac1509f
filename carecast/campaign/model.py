"""Pydantic models of a campaign file (`campaigns/<id>.yaml`).

A campaign is either a **journey** (a `trigger` event or lifecycle stage, then
`steps`) or a **broadcast** (an `audience`, an optional `schedule`, and one
`send`). Unknown keys are errors, so a typo never silently changes what a
campaign does. Each kind of step is a module of `carecast.campaign.steps`; the
checks that span steps (targets, reachability, loops) live in
`carecast.campaign.graph`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from croniter import croniter
from pydantic import AfterValidator, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from carecast.campaign.durations import Duration
from carecast.campaign.kpis import Kpis
from carecast.campaign.patterns import Mailbox
from carecast.campaign.steps import Step
from carecast.campaign.steps.base import Name, Strict
from carecast.campaign.steps.branch import Condition
from carecast.campaign.steps.send import Send, SendAction
from carecast.filters.model import FilterError, parse_filter
from carecast.policy.timezones import is_known_zone

# Events that announce a lifecycle move; a stage-triggered journey ends on leaving its stage.
STAGE_ENTERED, STAGE_LEFT = "stage_entered", "stage_left"


def _checked_audience(document: dict[str, Any]) -> dict[str, Any]:
    try:
        parse_filter(document, allow_event=False)
    except FilterError as exc:
        raise ValueError(str(exc)) from None
    return document


Audience = Annotated[dict[str, Any], AfterValidator(_checked_audience)]


class Trigger(Strict):
    event: Name | None = Field(default=None, description="the event that enrols a contact")
    stage: Name | None = Field(default=None, description="the lifecycle stage whose entry enrols a contact")

    @model_validator(mode="after")
    def exactly_one(self) -> Trigger:
        if (self.event is None) == (self.stage is None):
            raise ValueError("a trigger names either an event or a stage, e.g. {event: order_placed}")
        return self


class ReentryAfter(Strict):
    after: Duration


class Entry(Strict):
    when: Condition | None = Field(default=None, description="who may enter, checked at the trigger")
    reentry: Literal["never", "always"] | ReentryAfter = Field(default="never")
    key: str | None = Field(
        default=None, description="event data field that names an entry, e.g. order_id; the event id by default"
    )


class Goal(Strict):
    event: Name
    within: Duration


class Schedule(Strict):
    cron: str = Field(description="when it runs, e.g. '0 10 * * 1' for Mondays at 10:00")
    timezone: str = Field(description="an IANA zone, or `contact` for that local time in each contact's zone")

    @field_validator("cron")
    @classmethod
    def valid_cron(cls, cron: str) -> str:
        if len(cron.split()) != 5 or not croniter.is_valid(cron):
            raise ValueError(f"{cron!r} is not a five-field cron expression, e.g. '0 10 * * 1' (Mondays 10:00)")
        return cron

    @field_validator("timezone")
    @classmethod
    def known_zone(cls, zone: str) -> str:
        if zone != "contact" and not is_known_zone(zone):
            raise ValueError(f"unknown time zone {zone!r}; use an IANA name such as Europe/Paris, or `contact`")
        return zone


class Samples(Strict):
    """Data that `carecast validate` and `preview` render the templates with."""

    contact: dict[str, Any] = Field(default_factory=dict)
    event: dict[str, Any] = Field(default_factory=dict)


class Sender(Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    from_: Mailbox | None = Field(
        default=None, alias="from", description='"Name <address>" emails come from; policy.yaml sets the default'
    )
    reply_to: Mailbox | None = Field(default=None, description='"Name <address>" replies go to')


class Campaign(Strict):
    id: Name
    name: str = Field(min_length=1)
    description: str = ""
    category: Literal["transactional", "care", "marketing"]
    topic: Name | None = Field(default=None, description="subscription topic contacts can leave")
    # A journey:
    trigger: Trigger | None = None
    entry: Entry = Field(default_factory=Entry)
    exit_on: list[Name] = Field(default_factory=list, description="events that end the journey at once")
    goal: Goal | None = None
    holdout: float = Field(default=0, ge=0, le=50, description="percent of contacts kept as a control group")
    steps: list[Step] = Field(default_factory=list)
    # A broadcast:
    audience: Audience | None = None
    schedule: Schedule | None = None
    send: SendAction | None = None
    samples: Samples = Field(default_factory=Samples)
    sender: Sender | None = Field(default=None, description="who emails of this campaign come from")
    kpis: Kpis | None = Field(default=None, description="the numbers set before launch; `carecast report` reads them")

    @model_validator(mode="after")
    def journey_or_broadcast(self) -> Campaign:
        if self.category == "marketing" and self.topic is None:
            raise ValueError("a marketing campaign needs a topic, so contacts can unsubscribe from it")
        journey, broadcast = self.trigger is not None, self.audience is not None
        if journey == broadcast:
            raise ValueError("a campaign is a journey (trigger + steps) or a broadcast (audience + send)")
        if journey and (not self.steps or self.send is not None or self.schedule is not None):
            raise ValueError("a journey has a trigger and steps, and no send or schedule of its own")
        if broadcast and (self.send is None or self.steps):
            raise ValueError("a broadcast has an audience and one send, and no steps")
        return self

    @field_validator("id")
    @classmethod
    def not_reserved(cls, campaign_id: str) -> str:
        if campaign_id == "pressure":
            raise ValueError("`pressure` is taken by `carecast report pressure`: name the campaign otherwise")
        return campaign_id

    @field_validator("kpis")
    @classmethod
    def measurable(cls, kpis: Kpis | None, info: ValidationInfo) -> Kpis | None:
        """A conversion or lift KPI needs a journey with a goal (a lift, a holdout too): reported at `kpis:`."""
        if kpis is None or (kpis.conversion is None and kpis.lift is None):
            return kpis
        if info.data.get("trigger") is None:
            raise ValueError("conversion and lift count a journey's entries: a broadcast has none to convert")
        if info.data.get("goal") is None:
            raise ValueError("a conversion or lift KPI counts goal events: give the campaign a goal")
        if kpis.lift is not None and not info.data.get("holdout"):
            raise ValueError("a lift KPI compares with a holdout: give the campaign a holdout, e.g. holdout: 10")
        return kpis

    @property
    def is_journey(self) -> bool:
        return self.trigger is not None

    def sends(self) -> list[tuple[str, SendAction]]:
        """(step id, send) of every message the campaign can send."""
        if self.send is not None:
            return [("send", self.send)]
        return [(step.id, step.send) for step in self.steps if isinstance(step, Send)]

    def listens_to(self) -> list[str]:
        """The events a running journey of this campaign reacts to: exits, its goal, what its steps wait for."""
        events = set(self.exit_on)
        if self.goal is not None:
            events.add(self.goal.event)
        if self.trigger is not None and self.trigger.stage is not None:
            events.add(STAGE_LEFT)
        for step in self.steps:
            events |= step.listens_to()
        return sorted(events)

    def content_hash(self) -> str:
        """Changes exactly when the campaign's meaning changes (not its YAML layout)."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()
