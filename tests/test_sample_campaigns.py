"""Every shipped journey campaign, run over weeks of skipped time with the shipped templates and house rules."""

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from carecast.campaign.load import load_campaign
from carecast.channels.outbox import OutboxProvider
from carecast.intake.ingest import ingest_event
from carecast.intake.record import IncomingEvent, in_holdout
from carecast.worker import carecast_worker
from tests.factories import add_contact, deploy
from tests.skipping import skip_until_closed, terminate_running
from workflows.journey.workflow import JourneyWorkflow

pytestmark = pytest.mark.store

ROOT = Path(__file__).resolve().parent.parent
RUNS = {
    # campaign: (event name, event data, expected (step, status) in order)
    "welcome": ("signed_up", {}, [("welcome_email", "sent")]),
    "order_confirmation": (
        "order_placed", {"order_id": "A-1", "total": "$12"}, [("confirm_email", "sent"), ("confirm_sms", "sent")],
    ),
    "delivery_delay": (
        "delivery_delayed", {"order_id": "A-1", "new_eta": "Friday"},
        [("apologise", "sent"), ("credit", "updated"),
         *[("give_it_time", "waited"), ("follow_up", "sent"), ("again", "jumped")] * 3, ("give_it_time", "spent")],
    ),
    "welcome_series": (
        "signed_up", {},
        [("settle_in", "waited"), ("tips", "sent"), ("await_profile", "timed_out"), ("nudge_profile", "sent")],
    ),
    "win_back": (
        "stage_entered", {"stage": "lapsed"},
        [("offer", "sent"), ("wait_a_week", "waited"), ("not_monday_morning", "waited"), ("reminder", "sent")],
    ),
}  # fmt: skip


@pytest.mark.parametrize("campaign_id", sorted(RUNS))
async def test_shipped_journey_runs_to_its_end(campaign_id, time_skipping_env, settings, engine, sessions):
    event_name, data, expected = RUNS[campaign_id]
    campaign = load_campaign(ROOT / "campaigns" / f"{campaign_id}.yaml")
    contact_id = next(f"c-{n}" for n in range(100) if not in_holdout(campaign_id, f"c-{n}", campaign.holdout))
    settings = replace(settings, task_queue=f"samples-{uuid.uuid4().hex[:6]}")
    with sessions.begin() as session:
        deploy(session, settings.templates_dir, campaign)
        add_contact(
            session, contact_id, sms_consent=True, timezone="Europe/Paris",
            attributes={"first_name": "Ada", "interests": "running"},
        )  # fmt: skip
    client = time_skipping_env.client
    event = IncomingEvent(f"e-{uuid.uuid4().hex[:8]}", contact_id, event_name, datetime.now(UTC), data)
    provider = OutboxProvider(settings.outbox_dir, echo=lambda line: None)
    started: list[str] = []
    try:
        async with carecast_worker(client, settings, engine, provider) as worker, worker:
            result = await ingest_event(client, sessions, settings.task_queue, event)
            started = result.started
            [workflow_id] = started
            await skip_until_closed(time_skipping_env, workflow_id)
            outcome = await client.get_workflow_handle_for(JourneyWorkflow.run, workflow_id).result()
    finally:
        await terminate_running(client, started)
    assert [(s.step_id, s.status) for s in outcome.history] == expected
    assert len(list(settings.outbox_dir.iterdir())) == sum(status == "sent" for _, status in expected)
