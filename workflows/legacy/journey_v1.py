"""JourneyWorkflow, the first journey workflow type, kept until the journeys it started finish.

Nothing starts one any more (carecast starts `Journey`, workflows/journey/); the
worker still runs this type so journeys under way when carecast was upgraded go on
to their end, and their recorded histories replay against it. Remove it once no
`JourneyWorkflow` runs (Temporal UI: WorkflowType = 'JourneyWorkflow' AND
ExecutionStatus = 'Running').

The original description:

It interprets the campaign snapshot it was started with, so editing or
redeploying the YAML never changes a journey already under way. Steps run in
order unless a branch or a wait_for timeout jumps; an exit_on event, the goal
event, or (for a stage-triggered journey) leaving the stage ends it at once,
even while it waits.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

# Data classes cross the sandbox as they are, so their datetime fields decode to real datetimes.
with workflow.unsafe.imports_passed_through():
    from carecast.campaign.model import STAGE_LEFT
    from workflows import search_attributes as sa
    from workflows.journey.contract import (
        DELIVER,
        DELIVER_TIMEOUT,
        MATCH_CASE,
        NEXT_LOCAL_TIME,
        UPDATE_CONTACT,
        Control,
        DeliverInput,
        DeliverResult,
        JourneyEvent,
        MatchCaseInput,
        MatchCaseResult,
        NextLocalTimeInput,
        NextLocalTimeResult,
        UpdateContactInput,
    )
    from workflows.legacy.journey_v1_contract import (
        CampaignSnapshot,
        JourneyInput,
        JourneyResult,
        JourneyState,
        StepOutcome,
        StepSnapshot,
    )

SEND_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=5))
QUICK = timedelta(seconds=30)


@workflow.defn(name="JourneyWorkflow")
class JourneyWorkflowV1:
    def __init__(self) -> None:
        self._state = JourneyState()
        self._events: list[JourneyEvent] = []
        self._campaign: CampaignSnapshot | None = None
        self._goal_deadline: datetime | None = None

    @workflow.signal
    def event(self, event: JourneyEvent) -> None:
        self._events.append(event)

    @workflow.signal
    def stop(self, control: Control | None = None) -> None:
        """`carecast campaign stop` (added after this type's first runs; replay is unchanged without it)."""
        self._state.ended_by = self._state.ended_by or "stopped"

    @workflow.query
    def state(self) -> JourneyState:
        return self._state

    @workflow.run
    async def run(self, journey: JourneyInput) -> JourneyResult:
        campaign = self._campaign = journey.campaign
        if campaign.goal_within_seconds:
            self._goal_deadline = workflow.now() + timedelta(seconds=campaign.goal_within_seconds)
        position = {step.id: n for n, step in enumerate(campaign.steps)}
        index = 0
        while index < len(campaign.steps) and not self._ended():
            step = campaign.steps[index]
            self._enter(step.id)
            target = await self._run_step(journey, step)
            if target == "exit":
                self._state.ended_by = self._state.ended_by or "exit_step"
                break
            index = position[target] if target else index + 1
        self._enter(None)
        self._state.ended_by = self._state.ended_by or "completed"
        workflow.set_current_details(f"ended: {self._state.ended_by}")
        return JourneyResult(history=self._state.history, ended_by=self._state.ended_by)

    def _ended(self) -> bool:
        """Whether an event received so far ends the journey; records why."""
        if self._state.ended_by:
            return True
        campaign = self._campaign
        for event in self._events:
            if event.name in campaign.exit_on:
                self._state.ended_by = f"exit:{event.name}"
            elif event.name == campaign.goal_event and (
                self._goal_deadline is None or workflow.now() <= self._goal_deadline
            ):
                self._state.ended_by = "goal"
            elif event.name == STAGE_LEFT and event.stage is not None and event.stage == campaign.trigger_stage:
                self._state.ended_by = "stage_left"
        return self._state.ended_by is not None

    def _enter(self, step_id: str | None) -> None:
        self._state.current_step = step_id
        workflow.upsert_search_attributes([sa.CAMPAIGN_STEP.value_set(step_id or "done")])
        workflow.set_current_details(f"at step {step_id}" if step_id else "finished")

    def _record(self, step: StepSnapshot, status: str, **details) -> None:
        self._state.history.append(StepOutcome(step_id=step.id, status=status, **details))

    async def _run_step(self, journey: JourneyInput, step: StepSnapshot) -> str | None:
        """Runs one step; returns the id of the step to go to, "exit", or None for the next one."""
        if step.kind == "send":
            self._state.history.append(await self._send(journey, step))
        elif step.kind == "wait":
            await self._sleep(timedelta(seconds=step.seconds), f"wait {_human(step.seconds)}")
            if not self._ended():
                self._record(step, "waited")
        elif step.kind == "wait_until":
            until: NextLocalTimeResult = await workflow.execute_activity(
                NEXT_LOCAL_TIME,
                NextLocalTimeInput(journey.contact_id, step.time_of_day, list(step.weekdays), workflow.now()),
                result_type=NextLocalTimeResult,
                start_to_close_timeout=QUICK,
                summary=f"next {step.time_of_day} in the contact's zone",
            )
            await self._sleep(until.at - workflow.now(), f"wait until {until.local}")
            if not self._ended():
                self._record(step, "waited")
        elif step.kind == "wait_for":
            return await self._wait_for(step)
        elif step.kind == "branch":
            return await self._branch(journey, step)
        elif step.kind == "update":
            await workflow.execute_activity(
                UPDATE_CONTACT,
                UpdateContactInput(journey.contact_id, step.attributes, step.lifecycle_stage),
                start_to_close_timeout=QUICK,
                summary="update the contact",
            )
            self._record(step, "updated")
        elif step.kind == "exit":
            self._record(step, "exited")
            return "exit"
        return None

    async def _sleep(self, duration: timedelta, summary: str) -> None:
        """Sleeps on a durable timer, waking early when an event ends the journey."""
        if duration <= timedelta():
            return
        workflow.set_current_details(f"step {self._state.current_step}: {summary}")
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(self._ended, timeout=duration, timeout_summary=summary)

    async def _wait_for(self, step: StepSnapshot) -> str | None:
        seen = len(self._events)

        def arrived() -> bool:
            return self._ended() or any(e.name == step.event for e in self._events[seen:])

        summary = f"wait for {step.event} up to {_human(step.timeout_seconds)}"
        workflow.set_current_details(f"step {step.id}: {summary}")
        try:
            await workflow.wait_condition(
                arrived, timeout=timedelta(seconds=step.timeout_seconds), timeout_summary=summary
            )
        except TimeoutError:
            self._record(step, "timed_out")
            return step.on_timeout
        if not self._state.ended_by:
            self._record(step, "event_received")
        return None

    async def _branch(self, journey: JourneyInput, step: StepSnapshot) -> str | None:
        matched: MatchCaseResult = await workflow.execute_activity(
            MATCH_CASE,
            MatchCaseInput(
                journey.contact_id, journey.trigger_event_id, [c.condition for c in step.cases], workflow.now()
            ),
            result_type=MatchCaseResult,
            start_to_close_timeout=QUICK,
            summary=f"choose the way at {step.id}",
        )
        target = step.cases[matched.index].goto if matched.index >= 0 else step.otherwise
        self._record(step, "branched", reason=target or "next")
        return target

    async def _send(self, journey: JourneyInput, step: StepSnapshot) -> StepOutcome:
        """Delivers one step, sleeping on a durable timer for as long as the policy defers it."""
        held_since = workflow.now()
        while True:
            try:
                result = await self._deliver(journey, step, held_since)
            except ActivityError as exc:
                # Only non-retryable failures get here (e.g. a broken template): record and go on.
                cause = exc.cause.type if isinstance(exc.cause, ApplicationError) else "activity_failed"
                workflow.logger.warning("step %s failed: %s", step.id, exc.cause)
                return StepOutcome(step_id=step.id, status="failed", reason=cause)
            if result.status != "deferred" or result.deferred_until is None:
                return StepOutcome(step_id=step.id, status=result.status, channel=result.channel, reason=result.reason)
            waiting = f"{result.reason.replace('_', ' ')} until {result.deferred_until_local}"
            await self._sleep(max(result.deferred_until - workflow.now(), timedelta(seconds=1)), waiting)
            if self._ended():
                return StepOutcome(step_id=step.id, status="skipped", reason="journey_ended")

    async def _deliver(self, journey: JourneyInput, step: StepSnapshot, held_since: datetime) -> DeliverResult:
        campaign = journey.campaign
        return await workflow.execute_activity(
            DELIVER,
            DeliverInput(
                workflow_id=workflow.info().workflow_id,
                campaign_id=campaign.campaign_id,
                campaign_name=campaign.name,
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
                holdout=journey.holdout,
                asked_at=workflow.now(),
                sender=campaign.sender,
                reply_to=campaign.reply_to,
            ),
            result_type=DeliverResult,
            start_to_close_timeout=DELIVER_TIMEOUT,
            retry_policy=SEND_RETRY,
            summary=f"send {step.template} by {' or '.join(step.channels)}",
        )


def _human(seconds: int | None) -> str:
    seconds = seconds or 0
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
