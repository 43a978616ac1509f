"""Journeys on the time-skipping server: an event in, one message out, never twice."""

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from carecast.channels.outbox import OutboxProvider
from carecast.enrolment import IncomingEvent, UnknownContactError, ingest_event
from carecast.spec.loader import load_campaigns
from carecast.store.campaigns import deploy_campaign
from carecast.store.models import Delivery, Event
from carecast.worker import carecast_worker
from tests.factories import add_contact
from workflows.journey import JourneyWorkflow

pytestmark = pytest.mark.store


@pytest.fixture
def deployed(sessions, settings):
    with sessions.begin() as session:
        for campaign in load_campaigns(settings.campaigns_dir):
            deploy_campaign(session, campaign)
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
    time_skipping_env, settings, sessions, deployed, task_queue, event_id
):
    client = time_skipping_env.client
    printed: list[str] = []
    provider = OutboxProvider(settings.outbox_dir, echo=printed.append)
    settings = type(settings)(**{**settings.__dict__, "task_queue": task_queue})
    async with carecast_worker(client, settings, sessions, provider) as worker, worker:
        result = await ingest_event(client, sessions, task_queue, signed_up(event_id))
        assert result.started == [f"journey/welcome/c-1/{event_id}"]
        handle = client.get_workflow_handle_for(JourneyWorkflow.run, result.started[0])
        outcome = await handle.result()
        state = await handle.query(JourneyWorkflow.state)

    assert [(s.step_id, s.status, s.channel) for s in outcome.history] == [("welcome_email", "sent", "email")]
    assert state.current_step is None
    [eml] = settings.outbox_dir.glob("*.eml")
    assert "Maya from Acme care" in eml.read_text()
    assert len(printed) == 1


async def test_the_same_event_twice_enrols_once(time_skipping_env, settings, sessions, deployed, task_queue, event_id):
    client = time_skipping_env.client
    provider = OutboxProvider(settings.outbox_dir, echo=lambda line: None)
    settings = type(settings)(**{**settings.__dict__, "task_queue": task_queue})
    async with carecast_worker(client, settings, sessions, provider) as worker, worker:
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
