"""JourneyWorkflow: one contact's way through one campaign entry.

It interprets the campaign snapshot it was started with, so editing or
redeploying the YAML never changes a journey already under way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from carecast.spec.snapshot import CampaignSnapshot, SendStepSnapshot
from workflows import search_attributes as sa
from workflows.contracts import DELIVER, DELIVER_TIMEOUT, DeliverInput, DeliverResult

SEND_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=5))


@dataclass(frozen=True)
class JourneyInput:
    campaign: CampaignSnapshot
    contact_id: str
    entry_key: str
    trigger_event_id: str | None = None


@dataclass
class StepOutcome:
    step_id: str
    status: str
    channel: str | None = None
    reason: str | None = None


@dataclass
class JourneyState:
    current_step: str | None = None
    history: list[StepOutcome] = field(default_factory=list)


@dataclass
class JourneyResult:
    history: list[StepOutcome]


def journey_workflow_id(campaign_id: str, contact_id: str, entry_key: str) -> str:
    return f"journey/{campaign_id}/{contact_id}/{entry_key}"


def journey_summary(campaign: CampaignSnapshot, contact_id: str) -> str:
    return f"{campaign.campaign_id} · contact {contact_id} · v{campaign.version}"


@workflow.defn
class JourneyWorkflow:
    def __init__(self) -> None:
        self._state = JourneyState()

    @workflow.run
    async def run(self, journey: JourneyInput) -> JourneyResult:
        for step in journey.campaign.steps:
            self._enter(step.id)
            outcome = await self._send(journey, step)
            self._state.history.append(outcome)
        self._enter(None)
        return JourneyResult(history=self._state.history)

    @workflow.query
    def state(self) -> JourneyState:
        return self._state

    def _enter(self, step_id: str | None) -> None:
        self._state.current_step = step_id
        workflow.upsert_search_attributes([sa.CAMPAIGN_STEP.value_set(step_id or "done")])
        workflow.set_current_details(f"at step {step_id}" if step_id else "finished")

    async def _send(self, journey: JourneyInput, step: SendStepSnapshot) -> StepOutcome:
        """Delivers one step, sleeping on a durable timer for as long as the policy defers it."""
        campaign = journey.campaign
        held_since = workflow.now()
        while True:
            try:
                result = await self._deliver(journey, step, held_since)
            except ActivityError as exc:
                # Only non-retryable failures get here (e.g. a broken template): record and go on.
                cause = exc.cause.type if isinstance(exc.cause, ApplicationError) else "activity_failed"
                workflow.logger.warning("step %s of %s failed: %s", step.id, campaign.campaign_id, exc.cause)
                return StepOutcome(step_id=step.id, status="failed", reason=cause)
            if result.status != "deferred" or result.deferred_until is None:
                return StepOutcome(step_id=step.id, status=result.status, channel=result.channel, reason=result.reason)
            waiting = f"{result.reason.replace('_', ' ')} until {result.deferred_until_local}"
            workflow.set_current_details(f"step {step.id}: {waiting}")
            await workflow.sleep(max(result.deferred_until - workflow.now(), timedelta(seconds=1)), summary=waiting)

    async def _deliver(self, journey: JourneyInput, step: SendStepSnapshot, held_since: datetime) -> DeliverResult:
        campaign = journey.campaign
        return await workflow.execute_activity(
            DELIVER,
            DeliverInput(
                workflow_id=workflow.info().workflow_id,
                campaign_id=campaign.campaign_id,
                campaign_version=campaign.version,
                category=campaign.category,
                step_id=step.id,
                template=step.template,
                channels=list(step.channels),
                contact_id=journey.contact_id,
                trigger_event_id=journey.trigger_event_id,
                topic=campaign.topic,
                urgent=step.urgent,
                on_cap=step.on_cap,
                held_since=held_since,
                max_hold_seconds=step.max_hold_seconds,
            ),
            result_type=DeliverResult,
            start_to_close_timeout=DELIVER_TIMEOUT,
            retry_policy=SEND_RETRY,
            summary=f"send {step.template} by {' or '.join(step.channels)}",
        )
