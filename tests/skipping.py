"""Driving the time-skipping test server through multi-day journeys."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment


async def skip_until_closed(
    env: WorkflowEnvironment, workflow_id: str, step=timedelta(hours=1), limit=timedelta(days=60)
):
    """Advances the time-skipping server an hour at a time until the workflow closes.

    The server skips time by itself only while a client waits on the handle that
    started the workflow; journeys are started by carecast's own code, so tests skip
    explicitly. Returns the workflow's description.
    """
    handle = env.client.get_workflow_handle(workflow_id)
    skipped = timedelta()
    while (description := await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
        if skipped >= limit:
            raise AssertionError(f"{workflow_id} still running after {limit} of skipped time")
        await env.sleep(step)
        skipped += step
    return description
