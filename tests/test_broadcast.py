"""Broadcasts on the time-skipping server: pages, continue-as-new, deferrals, pause and cancel."""

import uuid
from dataclasses import replace

import pytest
from sqlalchemy import func, select

from carecast.channels.outbox import OutboxProvider
from carecast.store.models import Contact, Delivery, Preferences
from carecast.worker import carecast_worker
from tests.factories import deploy
from tests.skipping import eventually, skip_until_closed, terminate_running
from workflows.broadcast import BroadcastWorkflow
from workflows.broadcast_contract import BroadcastInput

pytestmark = pytest.mark.store

OFFER = """\
id: offer
name: Offer
category: marketing
topic: offers
audience: {attributes.wants: {eq: true}}
send: {template: offer, channels: [email]}
"""


@pytest.fixture
async def broadcast(time_skipping_env, settings, engine, sessions, tmp_path):
    campaigns, templates = tmp_path / "campaigns", tmp_path / "templates"
    campaigns.mkdir()
    templates.mkdir()
    (templates / "offer.email.subject.j2").write_text("An offer for {{ contact.id }}")
    (templates / "offer.email.txt.j2").write_text("Hello. {{ unsubscribe_url }}")
    task_queue = f"broadcast-{uuid.uuid4().hex[:8]}"
    settings = replace(settings, task_queue=task_queue, campaigns_dir=campaigns, templates_dir=templates)
    client = time_skipping_env.client

    def setup(policy="", contacts=23, wanting=lambda n: n % 4 != 0):
        (campaigns / "offer.yaml").write_text(OFFER)
        if policy:
            (campaigns / "policy.yaml").write_text(policy)
        with sessions.begin() as session:
            deploy(session, settings.templates_dir, campaigns / "offer.yaml")
            for n in range(contacts):
                session.add(Contact(id=f"c-{n:03d}", email=f"c{n}@example.com", timezone="UTC",
                                    attributes={"wants": wanting(n)}))  # fmt: skip
                session.add(Preferences(contact_id=f"c-{n:03d}", email_consent=True))

    async def run(page_size=5, pages_per_run=2, during=None, start_signal=None):
        workflow_id = f"broadcast/offer/{uuid.uuid4().hex[:8]}"
        started.append(workflow_id)
        provider = OutboxProvider(settings.outbox_dir, echo=lambda line: None)
        async with carecast_worker(client, settings, engine, provider) as worker, worker:
            await client.start_workflow(
                BroadcastWorkflow.run,
                BroadcastInput("offer", 1, page_size=page_size, pages_per_run=pages_per_run),
                id=workflow_id,
                task_queue=task_queue,
                start_signal=start_signal,
            )
            if during is not None:
                await during(workflow_id)
            await skip_until_closed(time_skipping_env, workflow_id)
            state = await client.get_workflow_handle_for(BroadcastWorkflow.run, workflow_id).result()
        return workflow_id, state

    started: list[str] = []
    run.setup = setup
    yield run
    await terminate_running(client, started)


def sent_to(sessions):
    with sessions() as session:
        rows = session.execute(
            select(Delivery.contact_id, func.count()).where(Delivery.status == "sent").group_by(Delivery.contact_id)
        )
        return dict(rows.all())


async def test_every_contact_in_the_audience_gets_exactly_one_message_across_pages(broadcast, sessions):
    broadcast.setup()
    workflow_id, state = await broadcast()
    expected = {f"c-{n:03d}" for n in range(23) if n % 4 != 0}
    assert sent_to(sessions) == {contact: 1 for contact in expected}
    assert (state.total, state.counters.audience, state.counters.sent) == (17, 17, 17)
    assert state.pages == 4 and state.done_reading  # 17 contacts in pages of 5, over two continue-as-new runs


async def test_quiet_hours_defer_and_the_broadcast_sends_when_they_end(broadcast, sessions, time_skipping_env):
    now = await time_skipping_env.get_current_time()  # earlier tests may have skipped the server's clock ahead
    start, end = (now.hour - 1) % 24, (now.hour + 2) % 24
    broadcast.setup(policy=f"timezone: UTC\nquiet_hours: {{start: '{start:02d}:00', end: '{end:02d}:00'}}\n")
    _, state = await broadcast()
    assert state.counters.sent == 17 and state.counters.deferred == 0
    with sessions() as session:
        sent_hours = {row.sent_at.hour for row in session.scalars(select(Delivery).where(Delivery.status == "sent"))}
    assert sent_hours == {end}


async def test_a_paused_broadcast_sends_nothing_until_resumed(broadcast, sessions, time_skipping_env):
    broadcast.setup(contacts=12, wanting=lambda n: True)
    client = time_skipping_env.client

    async def pause_check_resume(workflow_id):
        handle = client.get_workflow_handle_for(BroadcastWorkflow.run, workflow_id)
        state = await eventually(lambda: handle.query(BroadcastWorkflow.progress), lambda s: s.paused)
        assert state.counters.sent == 0 and sent_to(sessions) == {}
        await handle.signal(BroadcastWorkflow.resume)

    _, state = await broadcast(start_signal="pause", during=pause_check_resume)
    assert not state.paused and state.counters.sent == 12
    assert sent_to(sessions) == {f"c-{n:03d}": 1 for n in range(12)}


async def test_a_cancelled_broadcast_stops_before_the_next_page(broadcast, sessions, time_skipping_env):
    broadcast.setup(contacts=12, wanting=lambda n: True)

    async def cancel(workflow_id):
        await time_skipping_env.client.get_workflow_handle(workflow_id).signal(BroadcastWorkflow.cancel)

    _, state = await broadcast(start_signal="pause", during=cancel)
    assert state.cancelled and state.counters.sent == 0
    assert sent_to(sessions) == {}


async def test_a_broadcast_sends_the_words_its_version_was_deployed_with(broadcast, sessions, tmp_path):
    broadcast.setup(contacts=4, wanting=lambda n: True)
    templates = tmp_path / "templates"
    (templates / "offer.email.txt.j2").write_text("Edited after the deploy. {{ unsubscribe_url }}")
    (templates / "offer.email.subject.j2").unlink()  # deleted: the version deployed before still has it
    _, state = await broadcast()
    assert state.counters.sent == 4 and state.counters.failed == 0
    outbox = tmp_path / "home" / "outbox"
    emails = [eml.read_text() for eml in outbox.glob("*.eml")]
    assert len(emails) == 4 and all("An offer for c-" in m and "Hello." in m and "Edited" not in m for m in emails)
