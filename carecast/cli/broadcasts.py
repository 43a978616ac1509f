"""`broadcast start|pause|resume|cancel|status`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from carecast.cli.common import (
    broadcast_app,
    fail,
    load_settings,
    open_store,
    run_temporal,
    say,
)


@broadcast_app.command("start")
def broadcast_start(
    campaign_id: Annotated[str, typer.Argument(help="a deployed broadcast campaign")],
    allow_empty: Annotated[bool, typer.Option("--allow-empty", help="start it even if no contact matches")] = False,
) -> None:
    """Start a broadcast run now, whatever its schedule; it says how many contacts its audience matches."""
    from carecast.broadcasts import BroadcastError, audience_size, deployed_broadcast, start_broadcast
    from carecast.store.db import make_sessionmaker
    from carecast.temporal import pollers

    settings = load_settings()
    engine = open_store(settings)
    try:
        with make_sessionmaker(engine)() as session:
            campaign, version = deployed_broadcast(session, campaign_id)
            matched = audience_size(session, campaign, datetime.now(UTC))
    except BroadcastError as exc:
        fail(str(exc))
    finally:
        engine.dispose()
    say(f"audience   {matched} contact(s) match (the policy may still skip or defer some)")
    if matched == 0 and not allow_empty:
        fail(
            f"the audience of {campaign_id} matches no contact: check its filter, and that the attributes it "
            "compares were imported with their types (e.g. attr.vip:bool); --allow-empty starts it anyway"
        )
    label = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    queue = settings.broadcast_task_queue

    async def start(client) -> tuple[str, set[str]]:
        return await start_broadcast(client, queue, campaign, version, label), await pollers(client, queue)

    workflow_id, workers = run_temporal(settings, start)
    say(f"started    {workflow_id}")
    if not workers:
        say(f"waiting    no worker serves the broadcasts' task queue {queue!r} yet; it sends once one does "
            "(`carecast worker`, or `carecast worker --queues broadcasts`)")  # fmt: skip


def _signal_broadcast(campaign_id: str, signal: str) -> None:
    from carecast.broadcasts import latest_run
    from workflows.broadcast import BroadcastWorkflow

    settings = load_settings()

    async def work(client):
        workflow_id = await latest_run(client, campaign_id)
        await client.get_workflow_handle(workflow_id).signal(getattr(BroadcastWorkflow, signal))
        return workflow_id

    say(f"{signal:<10} {run_temporal(settings, work)}")


@broadcast_app.command("pause")
def broadcast_pause(campaign_id: str) -> None:
    """Pause the running broadcast of a campaign (it finishes the page it is on)."""
    _signal_broadcast(campaign_id, "pause")


@broadcast_app.command("resume")
def broadcast_resume(campaign_id: str) -> None:
    """Resume a paused broadcast."""
    _signal_broadcast(campaign_id, "resume")


@broadcast_app.command("cancel")
def broadcast_cancel(campaign_id: str) -> None:
    """Stop a broadcast after the page it is on; nobody is sent a message twice."""
    _signal_broadcast(campaign_id, "cancel")


@broadcast_app.command("status")
def broadcast_status(campaign_id: str) -> None:
    """How far the latest broadcast of a campaign is."""
    from temporalio.client import WorkflowExecutionStatus

    from carecast.broadcasts import latest_run, progress

    settings = load_settings()

    async def work(client):
        workflow_id = await latest_run(client, campaign_id)
        described = await client.get_workflow_handle(workflow_id).describe()
        return workflow_id, described.status, await progress(client, workflow_id)

    workflow_id, run_status, state = run_temporal(settings, work)
    if run_status != WorkflowExecutionStatus.RUNNING:
        status = run_status.name.lower()
    else:
        status = "cancelling" if state.cancelled else "paused" if state.paused else "sending"
    say(f"{workflow_id}: {status}, {state.counters.audience}/{state.total} contacts, {state.counters.summary()}")
    for reason, count in sorted(state.counters.skipped.items()):
        say(f"  skipped {reason}: {count}")
