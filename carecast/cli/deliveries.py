"""`deliveries list|resend`."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Annotated

import typer

from carecast.cli.common import (
    deliveries_app,
    fail,
    load_settings,
    open_store,
    run_temporal,
    say,
)


@deliveries_app.command("list")
def deliveries_list(
    status: Annotated[
        list[str] | None, typer.Option("--status", help="uncertain or failed (repeat for both; default both)")
    ] = None,
    campaign: Annotated[str | None, typer.Option("--campaign", help="only this campaign's")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="at most this many, newest first")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON array instead of one line each")] = False,
) -> None:
    """List the messages that need a human, newest first: uncertain (maybe out) and failed (not out), with why."""
    from carecast.delivery.attention import NEEDS_A_HUMAN, needing_attention
    from carecast.store.db import make_sessionmaker

    statuses = tuple(status or NEEDS_A_HUMAN)
    unknown = sorted(set(statuses) - set(NEEDS_A_HUMAN))
    if unknown:
        fail(f"--status {', '.join(unknown)}: use {' or '.join(NEEDS_A_HUMAN)}")
    engine = open_store(load_settings())
    try:
        with make_sessionmaker(engine)() as session:
            found = needing_attention(session, statuses, campaign, limit)
    finally:
        engine.dispose()
    if as_json:
        say(json.dumps([dict(vars(a), updated_at=a.updated_at.isoformat()) for a in found], indent=2))
        return
    for attention in found:
        say(attention.line())
    say(f"{len(found)} message(s) need a human" if found else "no message needs a human")


@deliveries_app.command("resend")
def deliveries_resend(
    delivery_id: Annotated[int, typer.Argument(help="a delivery id from `carecast deliveries list`")],
    wait: Annotated[float, typer.Option("--wait", min=0, help="seconds to wait for the outcome")] = 30,
) -> None:
    """Send an uncertain or failed transactional or care message again, once, through the workers.

    For when you have checked that it did not arrive. The policy is asked again (consent,
    suppressions, quiet hours); running this twice sends it once.
    """
    from temporalio.client import WorkflowFailureError

    from carecast.delivery.resend import ResendError, resend_request, start_resend
    from carecast.store.db import make_sessionmaker

    settings = load_settings()
    engine = open_store(settings)
    try:
        with make_sessionmaker(engine)() as session:
            request = resend_request(session, delivery_id, datetime.now(UTC))
    except ResendError as exc:
        fail(str(exc))
    finally:
        engine.dispose()

    async def work(client):
        handle, started = await start_resend(client, settings.task_queue, request)
        if not started:
            say(f"delivery {delivery_id} was resent before, by {handle.id}; its outcome:")
        try:
            return handle.id, await asyncio.wait_for(handle.result(), wait)
        except TimeoutError:
            return handle.id, None
        except WorkflowFailureError as exc:
            fail(f"{handle.id} failed: {exc.cause}")

    workflow_id, result = run_temporal(settings, work)
    if result is None:
        say(f"started    {workflow_id}: no outcome yet (is a worker running?); follow it in the Temporal UI")
        return
    how = f" by {result.channel}" if result.channel and result.status == "sent" else ""
    why = f" ({result.reason})" if result.reason else ""
    say(f"{result.status}{how}{why}: delivery {result.delivery_id}, {workflow_id}")
