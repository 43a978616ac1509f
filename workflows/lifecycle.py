"""LifecycleWorkflow: recompute every contact's lifecycle stage, page by page.

Run by the `lifecycle/recompute` schedule (hourly unless lifecycle.yaml says
otherwise). Each page moves the contacts whose stage changed and emits
`stage_left` / `stage_entered` for them, which end and start stage-triggered
journeys.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio import workflow

LIFECYCLE_WORKFLOW = "LifecycleWorkflow"
RECOMPUTE_STAGES = "recompute_stages"
PAGES_PER_RUN = 20


@dataclass(frozen=True)
class RecomputePage:
    as_of: datetime
    after: str | None
    limit: int


@dataclass
class RecomputeResult:
    last_contact_id: str | None
    rows: int
    moved: int


@dataclass(frozen=True)
class LifecycleInput:
    page_size: int = 1000
    as_of: datetime | None = None  # carried across continue-as-new
    after: str | None = None
    moved: int = 0
    seen: int = 0


@workflow.defn(name=LIFECYCLE_WORKFLOW)
class LifecycleWorkflow:
    @workflow.run
    async def run(self, run: LifecycleInput) -> LifecycleInput:
        as_of = run.as_of or workflow.info().start_time
        state = dataclasses.replace(run, as_of=as_of)
        for _ in range(PAGES_PER_RUN):
            page: RecomputeResult = await workflow.execute_activity(
                RECOMPUTE_STAGES,
                RecomputePage(as_of, state.after, state.page_size),
                result_type=RecomputeResult,
                start_to_close_timeout=timedelta(minutes=10),
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
