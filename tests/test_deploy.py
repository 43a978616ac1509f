"""carecast deploy against a real dev server: versions by content, schedules in step, idempotent."""

import asyncio
import shutil
import subprocess
import sys
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from temporalio.client import ScheduleBackfill, ScheduleOverlapPolicy, ScheduleUpdate, ScheduleUpdateInput

from carecast.campaign.house_rules import load_house_rules
from carecast.campaign.load import load_campaigns
from carecast.channels.outbox import OutboxProvider
from carecast.deploy import deploy_versions, schedule_id, sync_schedules
from carecast.store.models import CampaignVersion
from carecast.worker import carecast_worker
from workflows.broadcast import BroadcastWorkflow

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
TEMPORAL = str(Path(sys.executable).with_name("temporal"))


async def deploy(client, sessions, folder, settings):
    campaigns = load_campaigns(folder)
    with sessions.begin() as session:
        house = load_house_rules(folder).email
        changes, versions, removed = deploy_versions(session, campaigns, ROOT / "templates", house)
    return [str(c) for c in changes + await sync_schedules(client, campaigns, versions, removed, settings)]


@pytest.fixture
def folder(tmp_path):
    target = tmp_path / "campaigns"
    shutil.copytree(ROOT / "campaigns", target)
    # A unique campaign id per test run keeps schedules apart on the shared dev server.
    suffix = uuid.uuid4().hex[:6]
    text = (target / "back_in_stock.yaml").read_text().replace("id: back_in_stock", f"id: restock_{suffix}")
    (target / "back_in_stock.yaml").unlink()
    (target / f"restock_{suffix}.yaml").write_text(text)
    return target, f"restock_{suffix}"


async def test_deploy_twice_changes_nothing_the_second_time(dev_server_env, settings, sessions, folder):
    target, campaign_id = folder
    client = dev_server_env.client
    first = await deploy(client, sessions, target, settings)
    second = await deploy(client, sessions, target, settings)

    assert f"{campaign_id:<22} deployed version 1" in first
    assert any(line.startswith(f"{campaign_id:<22} schedule created") for line in first)
    assert second == []
    schedule = (await client.get_schedule_handle(schedule_id(campaign_id)).describe()).schedule
    assert schedule.action.workflow == "BroadcastWorkflow"
    assert schedule.state.note.startswith("Back in stock v1 (")
    assert not schedule.state.paused
    listed = subprocess.run(
        [TEMPORAL, "schedule", "list", "--address", client.service_client.config.target_host],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert schedule_id(campaign_id) in listed.stdout


async def test_a_changed_campaign_gets_a_new_version_and_its_schedule_follows(
    dev_server_env, settings, sessions, folder
):
    target, campaign_id = folder
    client = dev_server_env.client
    await deploy(client, sessions, target, settings)
    path = target / f"{campaign_id}.yaml"
    path.write_text(path.read_text().replace('cron: "0 10 * * 1"', 'cron: "0 11 * * 1"'))
    changes = await deploy(client, sessions, target, settings)

    assert f"{campaign_id:<22} deployed version 2" in changes
    assert any(line.startswith(f"{campaign_id:<22} schedule updated: Back in stock v2") for line in changes)
    with sessions() as session:
        versions = session.scalars(select(CampaignVersion.version).where(CampaignVersion.campaign_id == campaign_id))
        assert sorted(versions) == [1, 2]  # old versions stay for the journeys that run on them


async def test_a_campaign_removed_from_the_folder_is_deactivated_and_its_schedule_paused(
    dev_server_env, settings, sessions, folder
):
    target, campaign_id = folder
    client = dev_server_env.client
    await deploy(client, sessions, target, settings)
    (target / f"{campaign_id}.yaml").unlink()
    changes = await deploy(client, sessions, target, settings)

    assert changes == [f"{campaign_id:<22} removed from the folder: deactivated", f"{campaign_id:<22} schedule paused"]
    schedule = await client.get_schedule_handle(schedule_id(campaign_id)).describe()
    assert schedule.schedule.state.paused


async def test_a_contact_local_broadcast_fires_for_the_next_zones_while_a_run_still_holds_messages(
    dev_server_env, settings, sessions, folder
):
    target, campaign_id = folder
    client = dev_server_env.client
    await deploy(client, sessions, target, settings)
    handle = client.get_schedule_handle(schedule_id(campaign_id))
    assert (await handle.describe()).schedule.policy.overlap == ScheduleOverlapPolicy.ALLOW_ALL

    def as_deployed_before(update: ScheduleUpdateInput) -> ScheduleUpdate:  # what earlier deploys created
        update.description.schedule.policy.overlap = ScheduleOverlapPolicy.SKIP
        return ScheduleUpdate(schedule=update.description.schedule)

    await handle.update(as_deployed_before)
    changes = await deploy(client, sessions, target, settings)
    assert any(line.startswith(f"{campaign_id:<22} schedule updated") for line in changes)
    assert (await handle.describe()).schedule.policy.overlap == ScheduleOverlapPolicy.ALLOW_ALL


async def test_broadcast_schedules_start_on_the_broadcast_queue_and_old_ones_move_there(
    dev_server_env, settings, sessions, folder
):
    target, campaign_id = folder
    client = dev_server_env.client
    await deploy(client, sessions, target, settings)
    handle = client.get_schedule_handle(schedule_id(campaign_id))
    assert (await handle.describe()).schedule.action.task_queue == "carecast-broadcasts"

    def as_deployed_before(update: ScheduleUpdateInput) -> ScheduleUpdate:  # when every workflow shared one queue
        update.description.schedule.action.task_queue = "carecast"
        return ScheduleUpdate(schedule=update.description.schedule)

    await handle.update(as_deployed_before)
    changes = await deploy(client, sessions, target, settings)
    assert any(line.startswith(f"{campaign_id:<22} schedule updated") for line in changes)
    assert (await handle.describe()).schedule.action.task_queue == "carecast-broadcasts"


async def test_a_late_fire_judges_the_contacts_local_time_when_it_was_due(
    dev_server_env, settings, engine, sessions, folder
):
    target, campaign_id = folder
    client, task_queue = dev_server_env.client, f"deploy-{uuid.uuid4().hex[:6]}"
    settings = replace(settings, campaigns_dir=target, task_queue=task_queue)
    await deploy(client, sessions, target, settings)
    handle = client.get_schedule_handle(schedule_id(campaign_id))
    await handle.pause(note="only the backfill below runs")
    now = datetime.now(UTC)
    due = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0) - timedelta(hours=3)
    # A fire three hours late, as a catch-up after downtime starts it.
    await handle.backfill(ScheduleBackfill(start_at=due - timedelta(seconds=1), end_at=due + timedelta(seconds=1),
                                           overlap=ScheduleOverlapPolicy.ALLOW_ALL))  # fmt: skip
    provider = OutboxProvider(settings.outbox_dir, echo=lambda line: None)
    async with carecast_worker(client, settings, engine, provider) as worker, worker:
        for _ in range(100):
            actions = (await handle.describe()).info.recent_actions
            if actions:
                break
            await asyncio.sleep(0.1)
        [fired] = actions
        state = await client.get_workflow_handle_for(BroadcastWorkflow.run, fired.action.workflow_id).result()
    assert state.as_of == due  # not when it happened to start
