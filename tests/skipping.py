"""Driving the time-skipping test server through multi-day journeys."""

from __future__ import annotations

import asyncio
import os
import re
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

HISTORIES = Path(__file__).resolve().parent / "histories"


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
    if os.environ.get("CARECAST_RECORD_HISTORIES"):
        await record_history(handle, description.workflow_type)
    return description


async def record_history(handle, workflow_type: str, suffix: str = "") -> None:
    """Saves a finished workflow's history for the replay test (CARECAST_RECORD_HISTORIES=1 pytest ...)."""
    test = os.environ.get("PYTEST_CURRENT_TEST", "manual").split(" ")[0].split("::")[-1]
    name = re.sub(r"[^A-Za-z0-9_]+", "_", f"{workflow_type}_{test}{suffix}").strip("_")[:120]
    HISTORIES.mkdir(exist_ok=True)
    (HISTORIES / f"{name}.json").write_text((await handle.fetch_history()).to_json())


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


async def until_started(client: Client, workflow_id: str, seconds: float = 60) -> None:
    """Waits (real time) until Temporal knows the workflow: one the relay starts a moment from now."""
    from temporalio.service import RPCError

    for _ in range(int(seconds / 0.25)):
        try:
            await client.get_workflow_handle(workflow_id).describe()
            return
        except RPCError:
            await asyncio.sleep(0.25)
    raise AssertionError(f"{workflow_id} was never started")
