"""JourneyWorkflow: one contact's way through one entry into a campaign.

It interprets the campaign version it was started with (the version's bundle
renders its messages), so a later deploy never changes a journey under way.
Steps run in file order unless one jumps (branch, goto, a wait_for timeout, a
spent `max_visits`). Events reach it as signals, routed by contact, entry key and
the events this version listens to; an exit event, the goal (within its window),
leaving the trigger stage or an operator's stop end it at once, even while it
waits. A pause holds its sends until resumed. Each visit of a step is counted, so
every visit of a send is its own message; a long journey continues as new,
carrying what it knows.
"""

from __future__ import annotations

import contextlib
import dataclasses
from datetime import timedelta

from temporalio import workflow

# Passed through the sandbox: loaded once per worker, not for every journey.
with workflow.unsafe.imports_passed_through():
    from carecast.campaign.model import STAGE_LEFT
    from carecast.campaign.steps import Step
    from carecast.policy.decide import PAUSED_RECHECK
    from workflows import search_attributes as sa
    from workflows.journey.contract import (
        JOURNEY_WORKFLOW,
        KEPT_OUTCOMES,
        Control,
        JourneyEndedInput,
        JourneyEvent,
        JourneyInput,
        JourneyResult,
        JourneyState,
        ReceivedEvent,
        StepOutcome,
        journey_ended,
    )
    from workflows.journey.handlers import END, run_step


@workflow.defn(name=JOURNEY_WORKFLOW)
class JourneyWorkflow:
    @workflow.init
    def __init__(self, journey: JourneyInput) -> None:
        self.input = journey
        if journey.state is not None:
            self.state = journey.state
            return
        self.state = JourneyState(paused=journey.paused, began_at=journey.entered_at or workflow.info().start_time)
        for event in journey.heard_first:
            self.event(event)

    # Signals: events, and an operator's stop, pause and resume. Each may come before the run starts.

    @workflow.signal
    def event(self, event: JourneyEvent) -> None:
        heard = {self.input.trigger_event_id} | {e.event_id for e in self.state.events}
        if event.event_id in heard:
            return  # the event that enrolled the contact, or one heard before
        received = ReceivedEvent(event.name, event.event_id, workflow.now(), event.stage, occurred_at=event.occurred_at)
        self.state.events.append(received)
        if not self.state.ended_by:
            self.state.ended_by = self._ending(received)

    @workflow.signal
    def stop(self, control: Control) -> None:
        if self._newest(control):
            self.state.ended_by = self.state.ended_by or "stopped"

    @workflow.signal
    def pause(self, control: Control) -> None:
        if self._newest(control):
            self.state.paused, self.state.paused_why = True, control.reason
            workflow.set_current_details(self._paused_details())

    def _paused_details(self) -> str:
        """What the Temporal UI shows as a paused journey's current details: where, and why."""
        why = f": {self.state.paused_why}" if self.state.paused_why else " by an operator"
        return f"paused at step {self.state.current_step}{why}"

    @workflow.signal
    def resume(self, control: Control) -> None:
        if self._newest(control):
            self.state.paused = False
            self.state.resumes += 1

    def _newest(self, control: Control) -> bool:
        """Whether `control` is newer than every control applied so far (a late pause never undoes a resume)."""
        if self.state.control_at is not None and control.at <= self.state.control_at:
            return False
        self.state.control_at = control.at
        return True

    @workflow.query
    def progress(self) -> JourneyState:
        return self.state

    @workflow.run
    async def run(self, journey: JourneyInput) -> JourneyResult:
        steps = journey.campaign.steps
        position = {step.id: n for n, step in enumerate(steps)}
        index: int | None = position[self.state.continue_at] if self.state.continue_at else 0
        while index is not None and index < len(steps) and not self.state.ended_by:
            if self._history_is_long():
                self._continue_as_new(steps[index].id)
            step = steps[index]
            if step.max_visits is not None and self.state.visits.get(step.id, 0) >= step.max_visits:
                self.record(step, "spent", reason=f"max_visits {step.max_visits}")
                if step.when_spent is None:
                    self.state.ended_by = "visits_spent"
                index = position.get(step.when_spent) if step.when_spent else None
                continue
            self.state.visits[step.id] = self.state.visits.get(step.id, 0) + 1
            self._enter(step.id)
            target = await run_step(step, self)
            if target == END:
                self.state.ended_by = self.state.ended_by or "exit_step"
                break
            index = position[target] if target else index + 1
        self._enter(None)
        self.state.ended_by = self.state.ended_by or "completed"
        workflow.set_current_details(f"ended: {self.state.ended_by}")
        if journey.enrolment_id is not None:
            await workflow.execute_local_activity(
                journey_ended,
                JourneyEndedInput(journey.enrolment_id, self.state.ended_by),
                start_to_close_timeout=timedelta(seconds=30),
                summary="mark the enrolment ended",
            )
        return JourneyResult(history=self.state.history, ended_by=self.state.ended_by, runs=self.state.runs)

    # What the step handlers use.

    @property
    def ended(self) -> bool:
        return self.state.ended_by is not None

    def visit(self, step: Step) -> int:
        """The number of the current visit of this step: 1 the first time round."""
        return self.state.visits[step.id]

    def record(self, step: Step, status: str, **details) -> None:
        self.outcome(StepOutcome(step_id=step.id, status=status, visit=self.visit(step), **details))

    def outcome(self, outcome: StepOutcome) -> None:
        history = self.state.history
        history.append(outcome)
        del history[:-KEPT_OUTCOMES]

    def unused_event(self, name: str, step_id: str) -> ReceivedEvent | None:
        """The first event of that name since the journey began that no visit of this wait_for step used."""
        return next((e for e in self.state.events if e.name == name and step_id not in e.used_by), None)

    async def sleep(self, duration: timedelta, summary: str, wake_after_resume: int | None = None) -> None:
        """Sleeps on a durable timer, waking early when the journey ends (or, given the count of resumes
        when it fell asleep, when the campaign is resumed again)."""
        if duration <= timedelta():
            return
        workflow.set_current_details(f"step {self.state.current_step}: {summary}")

        def woken() -> bool:
            return self.ended or (wake_after_resume is not None and self.state.resumes > wake_after_resume)

        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(woken, timeout=duration, timeout_summary=summary)

    async def hold_while_paused(self) -> None:
        """Holds while an operator's pause is in force; asks again through the next send after a while,
        in case the resume was never heard (the store says what holds)."""
        if self.state.paused and not self.ended:
            workflow.set_current_details(self._paused_details())
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: not self.state.paused or self.ended, timeout=PAUSED_RECHECK, timeout_summary="paused"
                )

    def not_held(self) -> None:
        """The store let a send through: the campaign is not paused, whatever this journey last heard."""
        self.state.paused = False

    # Inside.

    def _ending(self, event: ReceivedEvent) -> str | None:
        """Why this event ends the journey, or None. The goal counts only inside its window."""
        campaign = self.input.campaign
        if event.name in campaign.exit_on:
            return f"exit:{event.name}"
        goal = campaign.goal
        happened = event.occurred_at or event.arrived_at
        if goal is not None and event.name == goal.event and happened <= self.state.began_at + goal.within:
            return "goal"
        trigger_stage = campaign.trigger.stage if campaign.trigger else None
        if event.name == STAGE_LEFT and trigger_stage is not None and event.stage == trigger_stage:
            return "stage_left"
        return None

    def _enter(self, step_id: str | None) -> None:
        self.state.current_step = step_id
        workflow.upsert_search_attributes([sa.CAMPAIGN_STEP.value_set(step_id or "done")])
        workflow.set_current_details(f"at step {step_id}" if step_id else "finished")

    def _history_is_long(self) -> bool:
        info = workflow.info()
        return info.is_continue_as_new_suggested() or info.get_current_history_length() >= self.input.history_limit

    def _continue_as_new(self, next_step: str) -> None:
        state = dataclasses.replace(self.state, continue_at=next_step, runs=self.state.runs + 1)
        workflow.continue_as_new(dataclasses.replace(self.input, state=state, heard_first=[]))
