"""Journeys on the time-skipping server: an event in, one message out, never twice."""

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from carecast.campaign.load import load_campaigns
from carecast.channels.outbox import OutboxProvider
from carecast.intake.ingest import ingest_event
from carecast.intake.record import IncomingEvent, UnknownContactError
from carecast.store.models import Delivery, Event
from carecast.worker import carecast_worker
from tests.factories import add_contact, deploy
from tests.skipping import skip_until_closed
from workflows.journey.workflow import JourneyWorkflow

pytestmark = pytest.mark.store


@pytest.fixture
def deployed(sessions, settings):
    with sessions.begin() as session:
        deploy(session, settings.templates_dir, settings.campaigns_dir / "welcome.yaml")
        add_contact(session, "c-1", care_agent="Maya from Acme care")


@pytest.fixture
def task_queue(settings):
    # One queue per test, so workers of other tests never pick up these tasks.
    return f"journeys-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def event_id():
    # The test server lives for the whole session: fresh ids keep workflow ids apart.
    return f"e-{uuid.uuid4().hex[:8]}"


def signed_up(event_id, contact_id="c-1"):
    return IncomingEvent(event_id, contact_id, "signed_up", datetime(2026, 11, 25, 9, 0, tzinfo=UTC))


async def test_an_event_starts_the_journey_and_the_message_lands_in_the_outbox(
    time_skipping_env, settings, engine, sessions, deployed, task_queue, event_id
):
    client = time_skipping_env.client
    printed: list[str] = []
    provider = OutboxProvider(settings.outbox_dir, echo=printed.append)
    settings = replace(settings, task_queue=task_queue)
    async with carecast_worker(client, settings, engine, provider) as worker, worker:
        result = await ingest_event(client, sessions, task_queue, signed_up(event_id))
        assert result.started == [f"journey/welcome/c-1/{event_id}"]
        handle = client.get_workflow_handle_for(JourneyWorkflow.run, result.started[0])
        outcome = await handle.result()
        state = await handle.query(JourneyWorkflow.progress)

    assert [(s.step_id, s.status, s.channel) for s in outcome.history] == [("welcome_email", "sent", "email")]
    assert state.current_step is None
    [eml] = settings.outbox_dir.glob("*.eml")
    assert "Maya from Acme care" in eml.read_text()
    assert len(printed) == 1


async def test_the_same_event_twice_enrols_once(
    time_skipping_env, settings, engine, sessions, deployed, task_queue, event_id
):
    client = time_skipping_env.client
    provider = OutboxProvider(settings.outbox_dir, echo=lambda line: None)
    settings = replace(settings, task_queue=task_queue)
    async with carecast_worker(client, settings, engine, provider) as worker, worker:
        first = await ingest_event(client, sessions, task_queue, signed_up(event_id))
        await client.get_workflow_handle(first.started[0]).result()
        second = await ingest_event(client, sessions, task_queue, signed_up(event_id))

    assert (first.duplicate, second.duplicate) == (False, True)
    assert second.started == [] and second.already_running == first.started
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 1
        assert session.scalar(select(func.count()).select_from(Delivery)) == 1


async def test_an_event_for_an_unknown_contact_is_refused_and_not_stored(
    time_skipping_env, sessions, deployed, event_id
):
    with pytest.raises(UnknownContactError, match="no contact with id 'ghost'"):
        await ingest_event(time_skipping_env.client, sessions, "unused", signed_up(event_id, contact_id="ghost"))
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 0


OFFER = """\
id: spring_offer
name: Spring offer
category: marketing
topic: offers
trigger: {event: browsed}
steps:
  - id: offer_email
    send: {template: welcome, channels: [email], max_hold: 1d}
"""


def quiet_hours_around(now: datetime, zone: str) -> str:
    """House rules whose quiet hours started an hour before `now` in `zone` and end two hours after."""
    local = now.astimezone(ZoneInfo(zone))
    start, end = (local - timedelta(hours=1)).strftime("%H:00"), (local + timedelta(hours=2)).strftime("%H:00")
    return f"timezone: UTC\nquiet_hours: {{start: '{start}', end: '{end}'}}\n", end


async def test_a_marketing_message_in_quiet_hours_waits_on_a_timer_until_morning(
    time_skipping_env, settings, engine, sessions, task_queue, event_id, tmp_path
):
    campaigns = tmp_path / "campaigns"
    campaigns.mkdir()
    # The test server's clock, which earlier tests may have skipped ahead, is the journey's "now".
    policy, quiet_end = quiet_hours_around(await time_skipping_env.get_current_time(), "Europe/Paris")
    (campaigns / "policy.yaml").write_text(policy)
    (campaigns / "spring_offer.yaml").write_text(OFFER)
    settings = replace(settings, task_queue=task_queue, campaigns_dir=campaigns)
    with sessions.begin() as session:
        for campaign in load_campaigns(campaigns):
            deploy(session, settings.templates_dir, campaign)
        add_contact(session, "c-1", timezone="Europe/Paris")
    client = time_skipping_env.client
    provider = OutboxProvider(settings.outbox_dir, echo=lambda line: None)
    browsed = IncomingEvent(event_id, "c-1", "browsed", datetime.now(UTC))

    async with carecast_worker(client, settings, engine, provider) as worker, worker:
        started = await ingest_event(client, sessions, task_queue, browsed)
        await skip_until_closed(time_skipping_env, started.started[0])
        handle = client.get_workflow_handle_for(JourneyWorkflow.run, started.started[0])
        outcome = await handle.result()
        history = await handle.fetch_history()

    assert [(s.step_id, s.status) for s in outcome.history] == [("offer_email", "sent")]
    timers = [e for e in history.events if e.HasField("timer_started_event_attributes")]
    [summary] = [t.user_metadata.summary for t in timers]
    text = summary.data.decode()  # "... until 08:00 Europe/Paris", with the day when it is not today
    assert "quiet hours until " in text and f"{quiet_end} Europe/Paris" in text
    with sessions() as session:
        [row] = session.scalars(select(Delivery)).all()
    assert row.sent_at.astimezone(ZoneInfo("Europe/Paris")).strftime("%H:00") == quiet_end
