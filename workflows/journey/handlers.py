"""What each kind of step does in a running journey: one `match` over the step union.

Each handler returns where the journey goes next: None for the next step in the
file, a step id for a jump, or END. A new kind of step gets its arm here (and its
model in carecast/campaign/steps/); `assert_never` keeps the match complete.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final, assert_never

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from carecast.campaign.steps import Branch, Exit, Goto, Send, Step, Update, Wait, WaitFor, WaitUntil
from workflows.journey import contract
from workflows.journey.contract import DeliverInput, DeliverResult, StepOutcome

if TYPE_CHECKING:
    from workflows.journey.workflow import JourneyWorkflow

END: Final = "__end__"
SEND_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=5))
QUICK = timedelta(seconds=30)


async def run_step(step: Step, journey: JourneyWorkflow) -> str | None:
    """Runs one visit of a step; returns the step to go to, END, or None for the next one."""
    match step:
        case Send():
            return await _send(step, journey)
        case Wait():
            await journey.sleep(step.wait, f"wait {_human(step.wait)}")
            if not journey.ended:
                journey.record(step, "waited")
            return None
        case WaitUntil():
            until = await workflow.execute_activity(
                contract.next_local_time,
                contract.NextLocalTimeInput(
                    journey.input.contact_id, step.wait_until.time, list(step.wait_until.weekdays or []), workflow.now()
                ),
                start_to_close_timeout=QUICK,
                summary=f"next {step.wait_until.time} in the contact's zone",
            )
            await journey.sleep(until.at - workflow.now(), f"wait until {until.local}")
            if not journey.ended:
                journey.record(step, "waited")
            return None
        case WaitFor():
            return await _wait_for(step, journey)
        case Branch():
            matched = await workflow.execute_activity(
                contract.match_case,
                contract.MatchCaseInput(
                    journey.input.contact_id,
                    journey.input.trigger_event_id,
                    [dict(case.when) for case in step.branch.cases],
                    workflow.now(),
                ),
                start_to_close_timeout=QUICK,
                summary=f"choose the way at {step.id}",
            )
            target = step.branch.cases[matched.index].goto if matched.index >= 0 else step.branch.otherwise
            journey.record(step, "branched", reason=target or "next")
            return target
        case Update():
            await workflow.execute_activity(
                contract.update_contact,
                contract.UpdateContactInput(
                    journey.input.contact_id,
                    step.update.attributes,
                    step.update.lifecycle_stage,
                    occasion=f"{workflow.info().workflow_id}/{step.id}/{journey.visit(step)}",
                ),
                start_to_close_timeout=QUICK,
                summary="update the contact",
            )
            journey.record(step, "updated")
            return None
        case Goto():
            journey.record(step, "jumped", reason=step.goto)
            return step.goto
        case Exit():
            journey.record(step, "exited")
            return END
        case _:
            assert_never(step)


async def _wait_for(step: WaitFor, journey: JourneyWorkflow) -> str | None:
    """Goes on with an event that came since the journey began and no earlier visit used, or times out."""
    wanted = step.wait_for

    def arrived() -> bool:
        return journey.ended or journey.unused_event(wanted.event, step.id) is not None

    summary = f"wait for {wanted.event} up to {_human(wanted.timeout)}"
    if not arrived():
        workflow.set_current_details(f"step {step.id}: {summary}")
        try:
            await workflow.wait_condition(arrived, timeout=wanted.timeout, timeout_summary=summary)
        except TimeoutError:
            journey.record(step, "timed_out")
            return wanted.on_timeout
    if journey.ended:
        return None
    event = journey.unused_event(wanted.event, step.id)
    event.used_by.append(step.id)
    journey.record(step, "event_received", reason=event.event_id)
    return None


async def _send(step: Send, journey: JourneyWorkflow) -> str | None:
    """Delivers one visit of a send step, sleeping on a durable timer while the policy defers it."""
    held_since = workflow.now()
    while True:
        await journey.hold_while_paused()
        if journey.ended:
            journey.record(step, "skipped", reason="journey_ended")
            return None
        resumes = journey.state.resumes
        try:
            result = await _deliver(step, journey, held_since)
        except ActivityError as exc:
            # Only non-retryable failures get here (e.g. a broken template): record and go on.
            cause = exc.cause.type if isinstance(exc.cause, ApplicationError) else "activity_failed"
            workflow.logger.warning("step %s failed: %s", step.id, exc.cause)
            journey.record(step, "failed", reason=cause)
            return None
        if result.reason != "campaign_paused":
            journey.not_held()
        if result.status != "deferred" or result.deferred_until is None:
            journey.outcome(StepOutcome(step.id, result.status, result.channel, result.reason, journey.visit(step)))
            return None
        waiting = f"{(result.reason or 'deferred').replace('_', ' ')} until {result.deferred_until_local}"
        # A send held by a paused campaign goes again as soon as the campaign is resumed.
        resumed = result.reason == "campaign_paused"
        await journey.sleep(
            max(result.deferred_until - workflow.now(), timedelta(seconds=1)),
            waiting,
            wake_after_resume=resumes if resumed else None,
        )


async def _deliver(step: Send, journey: JourneyWorkflow, held_since: datetime) -> DeliverResult:
    journey_input, campaign = journey.input, journey.input.campaign
    return await workflow.execute_activity(
        contract.deliver,
        DeliverInput(
            workflow_id=workflow.info().workflow_id,
            campaign_id=campaign.id,
            campaign_name=campaign.name,
            campaign_version=journey_input.version,
            category=campaign.category,
            step_id=step.id,
            template=step.send.template,
            channels=step.send.channel_list(),
            contact_id=journey_input.contact_id,
            trigger_event_id=journey_input.trigger_event_id,
            topic=campaign.topic,
            urgent=step.send.urgent,
            on_cap=step.send.on_cap,
            held_since=held_since,
            max_hold_seconds=int(step.send.max_hold.total_seconds()),
            holdout=journey_input.holdout,
            asked_at=workflow.now(),
            occurrence=journey.visit(step) - 1,
            sender=campaign.sender.from_ if campaign.sender else None,
            reply_to=campaign.sender.reply_to if campaign.sender else None,
            bundle=journey_input.bundle,
        ),
        start_to_close_timeout=contract.DELIVER_TIMEOUT,
        retry_policy=SEND_RETRY,
        summary=f"send {step.send.template} by {' or '.join(step.send.channel_list())}",
    )


def _human(duration: timedelta) -> str:
    seconds = int(duration.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
