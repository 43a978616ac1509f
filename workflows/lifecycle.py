"""LifecycleWorkflow: recompute every contact's lifecycle stage, page by page.

Run by the `lifecycle/recompute` schedule (hourly unless lifecycle.yaml says
otherwise). Each page moves the contacts whose stage changed and emits
`stage_left` / `stage_entered` for them, which end and start stage-triggered
journeys.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows import lifecycle_contract as contract
    from workflows.lifecycle_contract import LIFECYCLE_WORKFLOW, LifecycleInput, RecomputePage, RecomputeResult

PAGES_PER_RUN = 20


@workflow.defn(name=LIFECYCLE_WORKFLOW)
class LifecycleWorkflow:
    @workflow.run
    async def run(self, run: LifecycleInput) -> LifecycleInput:
        as_of = run.as_of or workflow.info().start_time
        state = dataclasses.replace(run, as_of=as_of)
        for _ in range(PAGES_PER_RUN):
            page: RecomputeResult = await workflow.execute_activity(
                contract.recompute_stages,
                RecomputePage(as_of, state.after, state.page_size),
                start_to_close_timeout=timedelta(minutes=10),
                heartbeat_timeout=contract.HEARTBEAT_TIMEOUT,
                summary=f"recompute stages after {state.after or 'the first contact'}",
            )
            state = dataclasses.replace(
                state,
                after=page.last_contact_id or state.after,
                moved=state.moved + page.moved,
                seen=state.seen + page.rows,
            )
            workflow.set_current_details(f"{state.seen} contacts checked, {state.moved} moved")
            if page.rows < state.page_size:
                return state
        workflow.continue_as_new(state)
