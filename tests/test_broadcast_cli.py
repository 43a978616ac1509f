"""`carecast broadcast start|status` against a real dev server and worker."""

import asyncio
import os
import subprocess
import sys
import uuid
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from carecast.channels.outbox import OutboxProvider
from carecast.config import ConfigError, Settings
from carecast.store.models import Contact
from carecast.worker import carecast_worker
from tests.factories import add_contact, cli_environment, deploy, pollers
from workflows.broadcast import BroadcastWorkflow
from workflows.broadcast_contract import BroadcastInput

pytestmark = pytest.mark.integration

CARECAST = str(Path(sys.executable).with_name("carecast"))


async def cli(env, *args):
    process = await asyncio.create_subprocess_exec(
        CARECAST, "broadcast", *args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await process.communicate()
    return process.returncode, out.decode(), err.decode()


def promo(settings, tmp_path):
    """A care broadcast to VIPs in a campaigns folder of its own, and settings with that folder and a task
    queue of their own (the dev server is the session's)."""
    campaign_id = f"promo_{uuid.uuid4().hex[:6]}"
    campaigns = tmp_path / "campaigns"
    campaigns.mkdir()
    (campaigns / f"{campaign_id}.yaml").write_text(
        f"id: {campaign_id}\nname: Promo\ncategory: care\naudience: {{attributes.vip: {{eq: true}}}}\n"
        "send: {template: welcome, channels: [email]}\n"
    )
    return campaign_id, replace(settings, campaigns_dir=campaigns, task_queue=f"cli-{uuid.uuid4().hex[:6]}")


async def test_start_then_status_until_completed(dev_server_env, settings, database_url, engine, sessions, tmp_path):
    campaign_id, settings = promo(settings, tmp_path)
    with sessions.begin() as session:
        deploy(session, settings.templates_dir, settings.campaigns_dir / f"{campaign_id}.yaml")
        for n in range(3):
            add_contact(session, f"v-{n}", attributes={"first_name": "Vi", "vip": True})
        add_contact(session, "not-vip")
    env = cli_environment(tmp_path, database_url, dev_server_env, settings.task_queue)
    provider = OutboxProvider(settings.outbox_dir, echo=lambda line: None)
    async with carecast_worker(dev_server_env.client, settings, engine, provider) as worker, worker:
        code, out, err = await cli(env, "start", campaign_id)
        assert code == 0, err
        assert out.startswith("audience   3 contact(s) match") and f"started    broadcast/{campaign_id}/" in out
        assert "waiting" not in out  # this test's worker serves the broadcasts' queue
        for _ in range(100):
            code, out, err = await cli(env, "status", campaign_id)
            if "completed" in out:
                break
            await asyncio.sleep(0.2)
    assert code == 0 and ": completed, 3/3 contacts, 3 sent, 0 skipped, 0 deferred, 0 failed" in out

    code, _, err = await cli(env, "start", "no_such_campaign")
    assert code == 1 and "no deployed campaign 'no_such_campaign'; run `carecast deploy` first" in err

    with sessions.begin() as session:  # nobody is a VIP any more: an empty audience is refused, unless allowed
        for contact in session.query(Contact):
            contact.attributes = {"first_name": "Vi", "vip": "true"}  # as text, as an untyped CSV column keeps it
    code, out, err = await cli(env, "start", campaign_id)
    assert code == 1 and "audience   0 contact(s) match" in out and "attr.vip:bool" in err
    code, out, _ = await cli(env, "start", campaign_id, "--allow-empty")
    assert code == 0 and f"started    broadcast/{campaign_id}/" in out


async def test_broadcasts_run_on_their_own_queue_so_journey_workers_never_take_their_pages(
    dev_server_env, settings, database_url, engine, sessions, tmp_path
):
    campaign_id, settings = promo(settings, tmp_path)
    with sessions.begin() as session:
        deploy(session, settings.templates_dir, settings.campaigns_dir / f"{campaign_id}.yaml")
        add_contact(session, "v-1", attributes={"first_name": "Vi", "vip": True})
    env = cli_environment(tmp_path, database_url, dev_server_env, settings.task_queue)
    provider = OutboxProvider(settings.outbox_dir, echo=lambda line: None)
    client = dev_server_env.client
    async with carecast_worker(client, settings, engine, provider, roles=["journeys"]) as journeys, journeys:
        assert list(journeys.by_queue) == [settings.task_queue]
        code, out, err = await cli(env, "start", campaign_id)
        assert code == 0, err
        workflow_id = out.split("started    ")[1].split()[0]
        assert f"waiting    no worker serves the broadcasts' task queue '{settings.task_queue}-broadcasts' yet" in out
        described = await client.get_workflow_handle(workflow_id).describe()
        assert described.task_queue == f"{settings.task_queue}-broadcasts"
        # The journeys worker polls its own queue and nothing else: the broadcast waits, unsent.
        assert await pollers(client, settings.task_queue) == {os.getpid()}
        assert await pollers(client, f"{settings.task_queue}-broadcasts", activities=False) == set()
        assert not list(settings.outbox_dir.glob("*.eml"))
        async with carecast_worker(client, settings, engine, provider, roles=["broadcasts"]) as pages, pages:
            assert list(pages.by_queue) == [f"{settings.task_queue}-broadcasts"]
            state = await asyncio.wait_for(client.get_workflow_handle(workflow_id).result(), 30)
    assert state["counters"]["sent"] == 1


async def test_a_broadcast_started_on_the_journeys_queue_before_the_split_finishes_there(
    dev_server_env, settings, engine, sessions, tmp_path
):
    campaign_id, settings = promo(settings, tmp_path)
    with sessions.begin() as session:
        deploy(session, settings.templates_dir, settings.campaigns_dir / f"{campaign_id}.yaml")
        add_contact(session, "v-1", attributes={"first_name": "Vi", "vip": True})
    provider = OutboxProvider(settings.outbox_dir, echo=lambda line: None)
    client = dev_server_env.client
    async with carecast_worker(client, settings, engine, provider, roles=["journeys"]) as journeys, journeys:
        state = await client.execute_workflow(
            BroadcastWorkflow.run, BroadcastInput(campaign_id, 1), id=f"broadcast/{campaign_id}/old",
            task_queue=settings.task_queue, execution_timeout=timedelta(seconds=60),
        )  # fmt: skip
    assert state.counters.sent == 1


async def test_worker_refuses_queues_it_does_not_know(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARECAST_")} | {"CARECAST_HOME": str(tmp_path)}
    process = await asyncio.create_subprocess_exec(
        CARECAST, "worker", "--queues", "journeys,pages", env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1
    assert "--queues 'journeys,pages': name one or both of journeys, broadcasts, separated by a comma" in err.decode()


def test_broadcasts_and_journeys_cannot_share_a_task_queue(tmp_path):
    env = {"CARECAST_HOME": str(tmp_path), "CARECAST_TASK_QUEUE": "acme"}
    assert Settings.from_env(env=env).broadcast_task_queue == "acme-broadcasts"
    assert Settings.from_env(env=env | {"CARECAST_BROADCAST_TASK_QUEUE": "bulk"}).broadcast_task_queue == "bulk"
    with pytest.raises(ConfigError, match="CARECAST_BROADCAST_TASK_QUEUE and CARECAST_TASK_QUEUE are both 'acme'"):
        Settings.from_env(env=env | {"CARECAST_BROADCAST_TASK_QUEUE": "acme"})
