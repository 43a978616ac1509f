"""What an operator sees in the Temporal UI (a real dev server): searchable, readable, no PII."""

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from carecast.channels.outbox import OutboxProvider
from carecast.intake.ingest import ingest_event
from carecast.intake.record import IncomingEvent
from carecast.worker import carecast_worker
from tests.factories import add_contact, deploy

pytestmark = pytest.mark.integration

CAMPAIGN = """\
id: {id}
name: Check-in
category: care
trigger: {{event: delivered}}
steps:
  - id: thanks
    send: {{template: welcome, channels: [email]}}
  - id: pause
    wait: 3d
  - id: check_in
    send: {{template: welcome, channels: [email]}}
"""


async def eventually_listed(client, query):
    for _ in range(100):
        found = [w async for w in client.list_workflows(query)]
        if found:
            return found
        await asyncio.sleep(0.1)
    return []


async def test_journeys_are_listed_by_campaign_and_current_step_with_no_pii(
    dev_server_env, settings, engine, sessions, tmp_path
):
    campaign_id = f"check_in_{uuid.uuid4().hex[:6]}"
    campaigns = tmp_path / "campaigns"
    campaigns.mkdir()
    (campaigns / f"{campaign_id}.yaml").write_text(CAMPAIGN.format(id=campaign_id))
    task_queue = f"operator-{uuid.uuid4().hex[:6]}"
    settings = replace(settings, campaigns_dir=campaigns, task_queue=task_queue)
    with sessions.begin() as session:
        deploy(session, settings.templates_dir, campaigns / f"{campaign_id}.yaml")
        add_contact(session, "c-1042", email="ada@example.com", phone="+14155550101")
    client = dev_server_env.client
    provider = OutboxProvider(settings.outbox_dir, echo=lambda line: None)

    async with carecast_worker(client, settings, engine, provider) as worker, worker:
        event = IncomingEvent("e-1", "c-1042", "delivered", datetime.now(UTC))
        [workflow_id] = (await ingest_event(client, sessions, task_queue, event)).started
        waiting = await eventually_listed(client, f"CampaignId = '{campaign_id}' AND CampaignStep = 'pause'")
        handle = client.get_workflow_handle(workflow_id)
        description = await handle.describe()
        history = (await handle.fetch_history()).to_json()
        await handle.terminate(reason="test done")

    assert [w.id for w in waiting] == [f"journey/{campaign_id}/c-1042/e-1"]
    assert await description.static_summary() == f"{campaign_id} · contact c-1042 · v1"
    ours = {"CampaignId", "CampaignVersion", "ContactId", "CampaignStep", "Category"}
    attributes = {key.name: value for key, value in description.typed_search_attributes if key.name in ours}
    assert attributes == {
        "CampaignId": campaign_id, "CampaignVersion": "1", "ContactId": "c-1042", "CampaignStep": "pause",
        "Category": "care",
    }  # fmt: skip
    for secret in ("ada@example.com", "+14155550101", "Welcome to Acme"):
        assert secret not in history and secret not in workflow_id
