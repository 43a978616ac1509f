"""The frozen form of a deployed campaign that a journey workflow carries.

Plain dataclasses only: workflows import this module, so it must stay free of
I/O and of anything non-deterministic. A running journey keeps the snapshot it
was started with, whatever is deployed after it. Filters travel in their YAML
form (definitions, never contact data).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class BranchCaseSnapshot:
    condition: dict[str, Any]
    goto: str


@dataclass(frozen=True)
class StepSnapshot:
    """One step; which fields matter depends on `kind` (send, wait, wait_until, wait_for, branch, update, exit)."""

    id: str
    kind: str
    # send
    template: str | None = None
    channels: list[str] = field(default_factory=list)
    urgent: bool = False
    on_cap: str = "skip"
    max_hold_seconds: int | None = None
    # wait
    seconds: int | None = None
    # wait_until
    time_of_day: str | None = None
    weekdays: list[str] = field(default_factory=list)
    # wait_for
    event: str | None = None
    timeout_seconds: int | None = None
    on_timeout: str | None = None
    # branch
    cases: list[BranchCaseSnapshot] = field(default_factory=list)
    otherwise: str | None = None
    # update
    attributes: dict[str, Any] | None = None
    lifecycle_stage: str | None = None


@dataclass(frozen=True)
class CampaignSnapshot:
    campaign_id: str
    name: str
    version: int
    content_hash: str
    category: str
    topic: str | None = None
    steps: list[StepSnapshot] = field(default_factory=list)
    exit_on: list[str] = field(default_factory=list)
    goal_event: str | None = None
    goal_within_seconds: int | None = None
    # A stage-triggered journey ends when the contact leaves that stage.
    trigger_stage: str | None = None
    # "Name <address>" of the campaign's emails; None: the house default in policy.yaml.
    sender: str | None = None
    reply_to: str | None = None


def _seconds(value) -> int | None:
    return None if value is None else int(value.total_seconds())


def _step_snapshot(step) -> StepSnapshot:
    from carecast.campaign.steps import Branch, Send, Update, Wait, WaitFor, WaitUntil

    fields: dict[str, Any] = {"id": step.id, "kind": step.kind}
    if isinstance(step, Send):
        fields.update(
            template=step.send.template,
            channels=step.send.channel_list(),
            urgent=step.send.urgent,
            on_cap=step.send.on_cap,
            max_hold_seconds=_seconds(step.send.max_hold),
        )
    elif isinstance(step, Wait):
        fields.update(seconds=_seconds(step.wait))
    elif isinstance(step, WaitUntil):
        fields.update(time_of_day=step.wait_until.time, weekdays=list(step.wait_until.weekdays or []))
    elif isinstance(step, WaitFor):
        wait_for = step.wait_for
        fields.update(event=wait_for.event, timeout_seconds=_seconds(wait_for.timeout), on_timeout=wait_for.on_timeout)
    elif isinstance(step, Branch):
        cases = [BranchCaseSnapshot(condition=dict(c.when), goto=c.goto) for c in step.branch.cases]
        fields.update(cases=cases, otherwise=step.branch.otherwise)
    elif isinstance(step, Update):
        fields.update(attributes=step.update.attributes, lifecycle_stage=step.update.lifecycle_stage)
    return StepSnapshot(**fields)


def snapshot(campaign, version: int) -> CampaignSnapshot:
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
