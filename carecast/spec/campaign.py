"""Pydantic models of a campaign file (`campaigns/<id>.yaml`).

A campaign is either a **journey** (a `trigger` event or lifecycle stage, then
`steps`) or a **broadcast** (an `audience`, an optional `schedule`, and one
`send`). Unknown keys are errors, so a typo never silently changes what a
campaign does; the checks that span steps (targets, reachability, loops) live in
`carecast.spec.journey_graph`.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Annotated, Any, Literal

from croniter import croniter
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from carecast.channels.base import CHANNELS
from carecast.filters.model import FilterError, parse_filter
from carecast.policy.timezones import is_known_zone
from carecast.spec.durations import Duration
from carecast.spec.patterns import CLOCK, IDENTIFIER, Mailbox
from carecast.spec.snapshot import BranchCaseSnapshot, CampaignSnapshot, StepSnapshot

DEFAULT_MAX_HOLD = timedelta(days=2)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
STEP_KINDS = ("send", "wait", "wait_until", "wait_for", "branch", "update", "exit")
Name = Annotated[str, Field(pattern=IDENTIFIER)]


def _filter_checker(allow_event: bool):
    def check(document: dict[str, Any]) -> dict[str, Any]:
        try:
            parse_filter(document, allow_event=allow_event)
        except FilterError as exc:
            raise ValueError(str(exc)) from None
        return document

    return check


# Filters stay in their YAML form (what is hashed, stored and snapshotted); parsing checks them.
Condition = Annotated[dict[str, Any], AfterValidator(_filter_checker(allow_event=True))]
Audience = Annotated[dict[str, Any], AfterValidator(_filter_checker(allow_event=False))]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


class SendAction(Strict):
    template: Name = Field(description="template name under templates/")
    channels: list[str] | Literal["preferred"] = Field(
        description="channels in order of preference, or `preferred` for the contact's own order"
    )
    urgent: bool = Field(default=False, description="transactional SMS/voice may break quiet hours")
    on_cap: Literal["skip", "defer"] = Field(default="skip", description="what a capped marketing message does")
    max_hold: Duration = Field(default=DEFAULT_MAX_HOLD, description="how long a deferred message may wait")

    @field_validator("channels")
    @classmethod
    def known_channels(cls, channels: list[str] | str) -> list[str] | str:
        if isinstance(channels, str):
            return channels
        if not channels:
            raise ValueError("list at least one channel, e.g. [email, sms]")
        unknown = [c for c in channels if c not in CHANNELS]
        if unknown:
            raise ValueError(f"unknown channel {unknown[0]!r}; use one of {', '.join(CHANNELS)}")
        if len(set(channels)) != len(channels):
            raise ValueError("a channel is listed twice")
        return channels

    def channel_list(self) -> list[str]:
        return list(CHANNELS) if self.channels == "preferred" else list(self.channels)


class WaitUntil(Strict):
    time: str = Field(pattern=CLOCK, description="local time of day in the contact's zone")
    weekdays: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] | None = None


class WaitFor(Strict):
    event: Name
    timeout: Duration
    on_timeout: Name | None = Field(default=None, description="step to go to when the event does not come")


class BranchCase(Strict):
    when: Condition
    goto: Name


class Branch(Strict):
    cases: list[BranchCase] = Field(min_length=1)
    otherwise: Name | None = Field(default=None, description="step when no case matches; the next step if unset")


class Update(Strict):
    attributes: dict[str, str | int | float | bool | None] | None = None
    lifecycle_stage: Name | None = None


class Step(Strict):
    id: Name
    send: SendAction | None = None
    wait: Duration | None = None
    wait_until: WaitUntil | None = None
    wait_for: WaitFor | None = None
    branch: Branch | None = None
    update: Update | None = None
    exit: Literal[True] | None = None

    @model_validator(mode="after")
    def exactly_one_kind(self) -> Step:
        given = [kind for kind in STEP_KINDS if getattr(self, kind) is not None]
        if len(given) != 1:
            raise ValueError(f"step {self.id!r} needs exactly one of {', '.join(STEP_KINDS)} (found {len(given)})")
        return self

    @property
    def kind(self) -> str:
        return next(kind for kind in STEP_KINDS if getattr(self, kind) is not None)


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

    @property
    def is_journey(self) -> bool:
        return self.trigger is not None

    def sends(self) -> list[tuple[str, SendAction]]:
        """(step id, send) of every message the campaign can send."""
        if self.send is not None:
            return [("send", self.send)]
        return [(step.id, step.send) for step in self.steps if step.send is not None]

    def content_hash(self) -> str:
        """Changes exactly when the campaign's meaning changes (not its YAML layout)."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def _seconds(value: timedelta | None) -> int | None:
    return None if value is None else int(value.total_seconds())


def _step_snapshot(step: Step) -> StepSnapshot:
    fields: dict[str, Any] = {"id": step.id, "kind": step.kind}
    if step.send is not None:
        fields.update(
            template=step.send.template,
            channels=step.send.channel_list(),
            urgent=step.send.urgent,
            on_cap=step.send.on_cap,
            max_hold_seconds=_seconds(step.send.max_hold),
        )
    elif step.wait is not None:
        fields.update(seconds=_seconds(step.wait))
    elif step.wait_until is not None:
        fields.update(time_of_day=step.wait_until.time, weekdays=list(step.wait_until.weekdays or []))
    elif step.wait_for is not None:
        wait_for = step.wait_for
        fields.update(event=wait_for.event, timeout_seconds=_seconds(wait_for.timeout), on_timeout=wait_for.on_timeout)
    elif step.branch is not None:
        cases = [BranchCaseSnapshot(condition=dict(c.when), goto=c.goto) for c in step.branch.cases]
        fields.update(cases=cases, otherwise=step.branch.otherwise)
    elif step.update is not None:
        fields.update(attributes=step.update.attributes, lifecycle_stage=step.update.lifecycle_stage)
    return StepSnapshot(**fields)


def snapshot(campaign: Campaign, version: int) -> CampaignSnapshot:
    """What a journey of this campaign version runs on."""
    return CampaignSnapshot(
        campaign_id=campaign.id,
        name=campaign.name,
        version=version,
        content_hash=campaign.content_hash(),
        category=campaign.category,
        topic=campaign.topic,
        steps=[_step_snapshot(step) for step in campaign.steps],
        exit_on=list(campaign.exit_on),
        goal_event=campaign.goal.event if campaign.goal else None,
        goal_within_seconds=_seconds(campaign.goal.within) if campaign.goal else None,
        trigger_stage=campaign.trigger.stage if campaign.trigger else None,
        sender=campaign.sender.from_ if campaign.sender else None,
        reply_to=campaign.sender.reply_to if campaign.sender else None,
    )
