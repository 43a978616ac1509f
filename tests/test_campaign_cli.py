"""`carecast campaign pause|resume|stop|start|status` against a real dev server and worker."""

import asyncio
import subprocess
import sys
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from temporalio.api.sdk.v1 import WorkflowMetadata

from carecast.channels.outbox import OutboxProvider
from carecast.intake.ingest import ingest_event
from carecast.intake.record import IncomingEvent
from carecast.store.models import Delivery
from carecast.worker import carecast_worker
from tests.factories import add_contact, cli_environment, deploy
from workflows.journey.workflow import JourneyWorkflow

pytestmark = pytest.mark.integration

CARECAST = str(Path(sys.executable).with_name("carecast"))


async def cli(env, *args):
    process = await asyncio.create_subprocess_exec(
        CARECAST, "campaign", *args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await process.communicate()
    return process.returncode, out.decode().strip(), err.decode().strip()


async def eventually(read, holds, seconds=30.0):
    for _ in range(int(seconds / 0.2)):
        value = await read()
        if holds(value):
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"never held; last {value!r}")


async def test_pause_holds_sends_resume_releases_them_stop_ends_the_journeys(
    dev_server_env, settings, database_url, engine, sessions, tmp_path
):
    campaign_id = f"held_{uuid.uuid4().hex[:6]}"
    campaigns = tmp_path / "campaigns"
    campaigns.mkdir()
    (campaigns / f"{campaign_id}.yaml").write_text(
        f"id: {campaign_id}\nname: Held\ncategory: care\ntrigger: {{event: signed_up}}\nentry: {{reentry: always}}\n"
        "steps:\n"
        "  - {id: hello, send: {template: welcome, channels: [email]}}\n"
        "  - {id: pause, wait: 3s}\n"
        "  - {id: again, send: {template: welcome, channels: [email]}}\n"
        "  - {id: long, wait: 1h}\n"
        "  - {id: last, send: {template: welcome, channels: [email]}}\n"
    )
    settings = replace(settings, campaigns_dir=campaigns, task_queue=f"cli-{uuid.uuid4().hex[:6]}")
    contact = f"c-{uuid.uuid4().hex[:6]}"
    with sessions.begin() as session:
        deploy(session, settings.templates_dir, campaigns / f"{campaign_id}.yaml")
        add_contact(session, contact)
    env = cli_environment(tmp_path, database_url, dev_server_env, settings.task_queue)
    client = dev_server_env.client

    async def sent():
        with sessions() as session:
            return session.scalars(
                select(Delivery.step_id).where(Delivery.campaign_id == campaign_id, Delivery.status == "sent")
            ).all()

    def signed_up():
        return IncomingEvent(f"e-{uuid.uuid4().hex[:8]}", contact, "signed_up", datetime.now(UTC))

    provider = OutboxProvider(settings.outbox_dir, echo=lambda line: None)
    async with carecast_worker(client, settings, engine, provider) as worker, worker:
        [journey] = (await ingest_event(client, sessions, settings.task_queue, signed_up())).started
        await eventually(sent, lambda steps: steps == ["hello"])
        assert await cli(env, "pause", campaign_id, "--reason", "checking the copy") == (
            0, f"{campaign_id} running -> paused; 1 running journey(s) told", "",
        )  # fmt: skip
        handle = client.get_workflow_handle(journey)
        await asyncio.sleep(5)  # past the 3 s wait: `again` is held
        assert await sent() == ["hello"]
        details = await handle.query(JourneyWorkflow.progress)
        assert details.paused and details.current_step == "again"
        shown = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        assert shown.current_details == "paused at step again: checking the copy"  # the UI's "Current details"
        code, out, _ = await cli(env, "status", campaign_id)
        assert code == 0 and out.startswith(f"{campaign_id}: paused since ") and "(checking the copy)" in out

        assert (await cli(env, "resume", campaign_id))[0] == 0
        await eventually(sent, lambda steps: steps == ["hello", "again"])

        assert (await cli(env, "stop", campaign_id))[
            1
        ] == f"{campaign_id} running -> stopped; 1 running journey(s) told"
        outcome = await asyncio.wait_for(client.get_workflow_handle_for(JourneyWorkflow.run, journey).result(), 30)
        assert outcome.ended_by == "stopped" and await sent() == ["hello", "again"]
        refused = await ingest_event(client, sessions, settings.task_queue, signed_up())
        assert refused.started == [] and refused.not_entered == {campaign_id: "campaign_stopped"}

        assert (await cli(env, "start", campaign_id))[
            1
        ] == f"{campaign_id} stopped -> running; 0 running journey(s) told"
        assert len((await ingest_event(client, sessions, settings.task_queue, signed_up())).started) == 1

    code, _, err = await cli(env, "pause", "no_such_campaign")
    assert code == 1 and "no deployed campaign 'no_such_campaign'" in err
