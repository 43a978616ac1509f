"""What happened to the simulated contact, in order, in their own local time.

Three sources, each the one that knows:
- the events the simulation sent, and what enrolment made of them (entered or not, and why);
- every deliver outcome, journeys' and broadcasts' alike (sent, deferred, skipped, held out),
  as the deliver activity returned it, with the subject or first words of what was sent;
- each journey's Temporal history: when it began, each wait with its summary (as the
  Temporal UI shows it), and how it ended.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError

from carecast.channels.base import OutboundMessage, Provider, ProviderReceipt
from carecast.channels.outbox import gist
from workflows.journey.contract import DELIVER, DeliverInput, DeliverResult, JourneyResult

# What a journey's `ended_by` means, in words.
ENDINGS = {
    "completed": "ran to its end",
    "goal": "its goal was reached",
    "stage_left": "the contact left its stage",
    "exit_step": "an exit step",
    "stopped": "stopped by an operator",
    "visits_spent": "a step's visits were spent",
}
SENT = "sent"


@dataclass(frozen=True)
class Entry:
    at: datetime  # UTC
    kind: str  # event, entered, not_entered, wait, sent, deferred, skipped, holdout, failed, ended, under_way
    campaign: str | None = None
    step: str | None = None
    channel: str | None = None
    detail: str = ""
    category: str | None = None  # of the campaign, for what a message entry says


@dataclass
class Timeline:
    contact_id: str
    zone: ZoneInfo
    start: datetime
    end: datetime
    sends: dict[str, list[str]] = field(default_factory=dict)  # campaign id → its steps that send
    entries: list[Entry] = field(default_factory=list)

    def ordered(self) -> list[Entry]:
        return sorted(self.entries, key=lambda e: e.at)  # stable: the order things were learnt in, at equal times

    def messages(self) -> list[Entry]:
        return [e for e in self.ordered() if e.kind == SENT]

    def local(self, at: datetime) -> datetime:
        return at.astimezone(self.zone)

    def line(self, entry: Entry) -> str:
        where = " · ".join(part for part in (entry.campaign, entry.step, entry.channel) if part)
        text = "  ".join(part for part in (where, entry.detail) if part)
        return f"{self.local(entry.at):%a %d %b %H:%M}  {entry.kind:<11} {text}"

    def lines(self) -> list[str]:
        head = (
            f"contact {self.contact_id} ({self.zone.key}), {self.local(self.start):%a %d %b %Y %H:%M}"
            f" to {self.local(self.end):%a %d %b %Y %H:%M} local time"
        )
        return [head, *(self.line(e) for e in self.ordered())]

    def as_dict(self) -> dict[str, Any]:
        def entry(e: Entry) -> dict[str, Any]:
            return asdict(e) | {"at": e.at.isoformat(), "local": self.local(e.at).isoformat()}

        return {
            "contact": self.contact_id,
            "timezone": self.zone.key,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "entries": [entry(e) for e in self.ordered()],
        }


class RecordingProvider:
    """A provider that also notes each message's subject or first words, for the timeline."""

    def __init__(self, inner: Provider) -> None:
        self.inner = inner
        self.name = inner.name
        self.idempotent = inner.idempotent
        self.gists: dict[int, str] = {}

    def send(self, message: OutboundMessage) -> ProviderReceipt:
        receipt = self.inner.send(message)
        self.gists[message.delivery_id] = gist(message)
        return receipt


def outcome_entry(request: DeliverInput, outcome: Any, at: datetime, gists: dict[int, str]) -> Entry:
    """One deliver outcome as an entry: what was sent (and what it said), or why not now or not at all."""
    where = dict(campaign=request.campaign_id, step=request.step_id, category=request.category)
    if isinstance(outcome, ApplicationError):
        return Entry(at, "failed", **where, detail=str(outcome))
    reason = (outcome.reason or "").replace("_", " ")
    if outcome.status == SENT:
        return Entry(at, SENT, **where, channel=outcome.channel, detail=f'"{gists.get(outcome.delivery_id, "")}"')
    if outcome.status == "deferred":
        until = outcome.deferred_until_local or (outcome.deferred_until and f"{outcome.deferred_until:%H:%M}Z")
        return Entry(at, "deferred", **where, channel=outcome.channel, detail=f"{reason} until {until}")
    if outcome.status == "holdout":
        return Entry(at, "holdout", **where, detail="held out to measure lift: would have been sent")
    return Entry(at, outcome.status, **where, channel=outcome.channel, detail=reason)


async def journey_entries(client: Client, workflow_id: str, end: datetime, label: str | None = None) -> list[Entry]:
    """A journey's beginning, waits and end, from its Temporal history (the latest run's); `label` tells
    apart journeys of one campaign (its entry key), in front of each entry's detail."""
    entries = await _history_entries(client, workflow_id, end)
    if label is None:
        return entries
    return [replace(e, detail=f"[{label}] {e.detail}".rstrip()) for e in entries]


async def _history_entries(client: Client, workflow_id: str, end: datetime) -> list[Entry]:
    campaign = workflow_id.split("/")[1]
    handle = client.get_workflow_handle(workflow_id)
    converter = client.data_converter
    entries: list[Entry] = []
    activity_types: dict[int, str] = {}
    deferred = False  # a timer right after a deferred send is its wait, which the send's entry already shows
    async for event in handle.fetch_history_events():
        at = event.event_time.ToDatetime(tzinfo=UTC)
        kind = event.WhichOneof("attributes")
        if kind == "workflow_execution_started_event_attributes":
            entries.append(Entry(at, "entered", campaign))
        elif kind == "activity_task_scheduled_event_attributes":
            activity_types[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
        elif kind == "activity_task_completed_event_attributes":
            completed = event.activity_task_completed_event_attributes
            if activity_types.get(completed.scheduled_event_id) == DELIVER:
                [result] = await converter.decode(completed.result.payloads, [DeliverResult])
                deferred = result.status == "deferred"
        elif kind == "timer_started_event_attributes":
            if not deferred:
                [summary] = await converter.decode([event.user_metadata.summary])
                entries.append(Entry(at, "wait", campaign, detail=str(summary or "wait")))
            deferred = False
        elif kind == "workflow_execution_completed_event_attributes":
            [result] = await converter.decode(event.workflow_execution_completed_event_attributes.result.payloads,
                                              [JourneyResult])  # fmt: skip
            entries.append(Entry(at, "ended", campaign, detail=_ending(result.ended_by)))
        elif kind in ("workflow_execution_failed_event_attributes", "workflow_execution_terminated_event_attributes"):
            entries.append(Entry(at, "ended", campaign, detail="failed: see it in the Temporal UI"))
    if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
        entries.append(Entry(end, "under_way", campaign, detail="still running when the simulation ended"))
    return entries


def _ending(ended_by: str) -> str:
    if ended_by.startswith("exit:"):
        return f"{ended_by.removeprefix('exit:')} came: an exit event"
    return ENDINGS.get(ended_by, ended_by)
