"""What a journey is started with, hears, remembers and reports, and the activities it calls.

Shared by the workflow, the activities and the code that starts journeys. Kept out
of the workflow's own module, which Temporal's sandbox loads afresh for every
workflow it runs. The activities are declared here as typed stubs with their
names; the worker registers the real ones (activities/) under the same names, so
workflow code never imports SQLAlchemy, Jinja2 or a provider SDK. Payloads carry
ids and small values only: no address, no rendered body.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from temporalio import activity

from carecast.campaign.model import Campaign

JOURNEY_WORKFLOW = "Journey"
# One deliver attempt may take this long; a `sending` row older than this belongs to no live attempt.
DELIVER_TIMEOUT = timedelta(minutes=1)
# A journey continues as new when Temporal suggests it or its history passes this many events.
HISTORY_LIMIT = 10_000
# The outcomes a journey keeps in its state (and result); older ones are dropped on the way.
KEPT_OUTCOMES = 200


@dataclass(frozen=True)
class JourneyEvent:
    """A signal to a running journey: an event of its contact that it waits for, exits or converts on."""

    name: str
    event_id: str
    stage: str | None = None  # for stage_entered / stage_left
    occurred_at: datetime | None = None  # when it happened: a goal counts when it happened inside its window


@dataclass(frozen=True)
class Control:
    """An operator's stop, pause or resume, with when it was given: a journey applies only the newest."""

    at: datetime
    reason: str | None = None  # why, as `campaign pause --reason` or a guardrail gave it: shown in the UI


@dataclass
class ReceivedEvent:
    name: str
    event_id: str
    arrived_at: datetime
    stage: str | None = None
    occurred_at: datetime | None = None
    # The wait_for steps whose visit this event satisfied; a later visit of one of them needs another event.
    used_by: list[str] = field(default_factory=list)


@dataclass
class StepOutcome:
    step_id: str
    status: str
    channel: str | None = None
    reason: str | None = None
    visit: int = 1


@dataclass
class JourneyState:
    """Everything a journey knows; carried across continue-as-new, and what the `state` query returns."""

    current_step: str | None = None
    continue_at: str | None = None  # the step to go on at after continue-as-new
    visits: dict[str, int] = field(default_factory=dict)
    events: list[ReceivedEvent] = field(default_factory=list)
    history: list[StepOutcome] = field(default_factory=list)
    ended_by: str | None = None  # completed, exit:<event>, goal, stage_left, exit_step, stopped, visits_spent
    paused: bool = False
    paused_why: str | None = None  # the reason its pause came with
    resumes: int = 0  # how many times the campaign was resumed, so a held send wakes on the next one
    control_at: datetime | None = None  # when the newest stop, pause or resume applied was given
    began_at: datetime | None = None  # when the contact entered; the goal's window runs from here
    runs: int = 1


@dataclass(frozen=True)
class JourneyInput:
    campaign: Campaign
    version: int
    bundle: str  # the content hash of the deployed version: templates and sender are rendered from it
    contact_id: str
    entry_key: str
    trigger_event_id: str | None = None
    holdout: bool = False
    paused: bool = False  # the campaign was paused when the journey started
    enrolment_id: int | None = None  # the store's enrolment, marked ended with the journey
    entered_at: datetime | None = None  # when the contact was enrolled
    history_limit: int = HISTORY_LIMIT
    state: JourneyState | None = None  # set when the journey continues as new
    # Events for it already in the store when it starts (an exit that won the race with the trigger): it
    # hears them before its first step, whichever outbox row starts it.
    heard_first: list[JourneyEvent] = field(default_factory=list)


@dataclass
class JourneyResult:
    history: list[StepOutcome]
    ended_by: str
    runs: int = 1  # 1 + how many times it continued as new


def journey_workflow_id(campaign_id: str, contact_id: str, entry_key: str) -> str:
    return f"journey/{campaign_id}/{contact_id}/{entry_key}"


def journey_summary(campaign_id: str, contact_id: str, version: int) -> str:
    return f"{campaign_id} · contact {contact_id} · v{version}"


# The activities a journey calls: typed stubs the workflow calls, names the worker registers the real ones by.

DELIVER, NEXT_LOCAL_TIME, MATCH_CASE, UPDATE_CONTACT = "deliver", "next_local_time", "match_case", "update_contact"
JOURNEY_ENDED = "journey_ended"


@dataclass(frozen=True)
class DeliverInput:
    workflow_id: str
    campaign_id: str
    campaign_name: str
    campaign_version: int
    category: str
    step_id: str
    template: str
    channels: list[str]
    contact_id: str
    trigger_event_id: str | None
    topic: str | None = None
    urgent: bool = False
    on_cap: str = "skip"
    # When the step first asked to send, and how long it may wait after that.
    held_since: datetime | None = None
    max_hold_seconds: int | None = None
    # A holdout contact's journey records the message it would have sent, and sends nothing.
    holdout: bool = False
    # The workflow's clock when it asked. The policy decides at no earlier moment, so a journey
    # that slept until morning (on the time-skipping test server too) is judged in the morning.
    asked_at: datetime | None = None
    # Counts the visits of this step within one journey (0 for the first), never the activity
    # attempt, so the idempotency key is the same on every retry and replay, and new on each visit.
    occurrence: int = 0
    # The campaign's own "Name <address>" for emails; None: the bundle's, else the house default.
    sender: str | None = None
    reply_to: str | None = None
    # The deployed version's bundle (its content hash): templates and sender come from it.
    # None for journeys started before bundles, which render from the worker's folder.
    bundle: str | None = None

    @property
    def idempotency_key(self) -> str:
        return f"{self.workflow_id}/{self.step_id}/{self.contact_id}/{self.occurrence}"


@dataclass(frozen=True)
class DeliverResult:
    delivery_id: int
    status: str  # "sent", "skipped", "failed", "uncertain", "deferred" or "holdout"
    channel: str | None = None
    reason: str | None = None
    deferred_until: datetime | None = None
    # The same moment in the contact's own zone, for timer summaries: "08:00 Europe/Paris".
    deferred_until_local: str | None = None


@dataclass(frozen=True)
class NextLocalTimeInput:
    contact_id: str
    time_of_day: str  # HH:MM in the contact's zone
    weekdays: list[str]  # mon..sun; empty means any day
    after: datetime


@dataclass(frozen=True)
class NextLocalTimeResult:
    at: datetime
    local: str  # e.g. "Mon 10:00 Europe/Paris", for the timer's summary


@dataclass(frozen=True)
class MatchCaseInput:
    contact_id: str
    trigger_event_id: str | None
    conditions: list[dict]
    now: datetime


@dataclass(frozen=True)
class MatchCaseResult:
    index: int  # the first condition that holds, or -1


@dataclass(frozen=True)
class UpdateContactInput:
    contact_id: str
    attributes: dict | None
    lifecycle_stage: str | None
    # Names the announcement of a stage move: the same on every retry, new on every visit of the step.
    # None (journeys started before it): the activity's own id.
    occasion: str | None = None


@activity.defn(name=DELIVER)
def deliver(request: DeliverInput) -> DeliverResult:
    """Asks the policy, claims, renders, hands over and records one message (activities/deliver.py)."""
    raise NotImplementedError


@activity.defn(name=NEXT_LOCAL_TIME)
def next_local_time(request: NextLocalTimeInput) -> NextLocalTimeResult:
    """The next moment a time of day comes round in the contact's zone (activities/journey_steps.py)."""
    raise NotImplementedError


@activity.defn(name=MATCH_CASE)
def match_case(request: MatchCaseInput) -> MatchCaseResult:
    """The first branch case that holds for the contact and its trigger event (activities/journey_steps.py)."""
    raise NotImplementedError


@activity.defn(name=UPDATE_CONTACT)
def update_contact(request: UpdateContactInput) -> None:
    """Sets attributes and stage, and announces a stage move (activities/journey_steps.py)."""
    raise NotImplementedError


@dataclass(frozen=True)
class JourneyEndedInput:
    enrolment_id: int
    ended_by: str


@activity.defn(name=JOURNEY_ENDED)
def journey_ended(request: JourneyEndedInput) -> None:
    """Marks the journey's enrolment ended, so nothing steers it any more (activities/journey_steps.py)."""
    raise NotImplementedError
