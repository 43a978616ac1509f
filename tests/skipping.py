"""Driving the time-skipping test server through multi-day journeys."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.client import Client, WorkflowExecutionStatus
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


async def eventually(read, holds, attempts: int = 100, pause: float = 0.05):
    """Reads until `holds(value)` (a workflow may not have run its first task yet); returns the value."""
    for _ in range(attempts):
        value = await read()
        if holds(value):
            return value
        await asyncio.sleep(pause)
    raise AssertionError(f"never held; last value {value!r}")


async def terminate_running(client: Client, workflow_ids: list[str]) -> None:
    """Ends what a failed test left running: on the shared time-skipping server an unfinished
    workflow with no worker blocks time skipping for every later test."""
    for workflow_id in workflow_ids:
        handle = client.get_workflow_handle(workflow_id)
        if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            await handle.terminate(reason="test cleanup")
