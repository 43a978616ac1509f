"""Broadcasts on the time-skipping server: pages, continue-as-new, deferrals, pause and cancel, provider faults."""

import asyncio
import threading
import uuid
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from carecast.channels.base import ProviderError
from carecast.channels.outbox import OutboxProvider
from carecast.store.models import Contact, Delivery, Preferences, Suppression
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
send: {template: offer, channels: [email, sms]}
"""


@pytest.fixture
async def broadcast(time_skipping_env, settings, engine, sessions, tmp_path):
    campaigns, templates = tmp_path / "campaigns", tmp_path / "templates"
    campaigns.mkdir()
    templates.mkdir()
    (templates / "offer.email.subject.j2").write_text("An offer for {{ contact.id }}")
    (templates / "offer.email.txt.j2").write_text("Hello. {{ unsubscribe_url }}")
    (templates / "offer.sms.j2").write_text("An offer. Reply STOP to opt out.")
    task_queue = f"broadcast-{uuid.uuid4().hex[:8]}"
    settings = replace(settings, task_queue=task_queue, campaigns_dir=campaigns, templates_dir=templates)
    client = time_skipping_env.client

    def setup(policy="", contacts=23, wanting=lambda n: n % 4 != 0, sms=False):
        (campaigns / "offer.yaml").write_text(OFFER)
        if policy:
            (campaigns / "policy.yaml").write_text(policy)
        with sessions.begin() as session:
            deploy(session, settings.templates_dir, campaigns / "offer.yaml")
            for n in range(contacts):
                session.add(Contact(id=f"c-{n:03d}", email=f"c{n}@example.com", phone=f"+1415555{n:04d}",
                                    timezone="UTC", attributes={"wants": wanting(n)}))  # fmt: skip
                session.add(Preferences(contact_id=f"c-{n:03d}", email_consent=True, sms_consent=sms))

    async def run(page_size=5, pages_per_run=2, during=None, start_signal=None, faults=None, parallel_pages=4):
        workflow_id = f"broadcast/offer/{uuid.uuid4().hex[:8]}"
        started.append(workflow_id)
        provider = OutboxProvider(settings.outbox_dir, echo=lambda line: None)
        if faults is not None:
            provider = FaultyProvider(provider, faults)
        async with carecast_worker(client, settings, engine, provider) as worker, worker:
            await client.start_workflow(
                BroadcastWorkflow.run,
                BroadcastInput(
                    "offer", 1, page_size=page_size, pages_per_run=pages_per_run, parallel_pages=parallel_pages
                ),
                id=workflow_id,
                task_queue=settings.broadcast_task_queue,
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


class FaultyProvider:
    """The outbox, but a contact's first hand-overs meet the errors scripted for it, one per hand-over.

    A callable instead of an error runs first (a test's hook) and then the message goes out.
    """

    name = "faulty"
    idempotent = False  # as SendGrid and Twilio: a message handed over twice may arrive twice

    def __init__(self, outbox: OutboxProvider, faults: dict) -> None:
        self.outbox = outbox
        self.faults = {contact: list(errors) for contact, errors in faults.items()}
        self.lock = threading.Lock()
        self.handed: list[tuple[str, str]] = []  # (contact, channel) of every hand-over, failed or not

    def send(self, message):
        with self.lock:
            self.handed.append((message.contact_id, message.channel))
            errors = self.faults.get(message.contact_id) or []
            fault = errors.pop(0) if errors else None
        if isinstance(fault, Exception):
            raise fault
        if fault is not None:
            fault()
        return self.outbox.send(message)


def history_of(sessions, contact_id):
    with sessions() as session:
        row = session.scalars(select(Delivery).where(Delivery.contact_id == contact_id)).one()
        return row.status, row.channel, [(e["status"], e.get("kind")) for e in row.status_history]


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


async def test_a_paused_signal_mid_broadcast_stops_it_before_the_next_page(broadcast, sessions, time_skipping_env):
    broadcast.setup(contacts=15, wanting=lambda n: True)
    client = time_skipping_env.client
    on_first_page, go_on = threading.Event(), threading.Event()

    def hold_the_first_page():
        on_first_page.set()
        go_on.wait(30)

    async def pause_mid_page(workflow_id):
        await asyncio.get_running_loop().run_in_executor(None, on_first_page.wait, 30)
        handle = client.get_workflow_handle_for(BroadcastWorkflow.run, workflow_id)
        await handle.signal(BroadcastWorkflow.pause)
        await eventually(lambda: handle.query(BroadcastWorkflow.progress), lambda s: s.paused)
        go_on.set()
        state = await eventually(lambda: handle.query(BroadcastWorkflow.progress), lambda s: s.pages == 1)
        await time_skipping_env.sleep(timedelta(hours=2))
        state = await handle.query(BroadcastWorkflow.progress)
        assert state.pages == 1 and state.counters.sent == 5 and len(sent_to(sessions)) == 5
        await handle.signal(BroadcastWorkflow.resume)

    faults = {"c-000": [hold_the_first_page]}
    _, state = await broadcast(page_size=5, parallel_pages=1, faults=faults, during=pause_mid_page)
    assert not state.paused and state.counters.sent == 15
    assert sent_to(sessions) == {f"c-{n:03d}": 1 for n in range(15)}


async def test_a_429_or_5xx_mid_page_is_retried_on_its_own_and_the_page_goes_on(broadcast, sessions):
    broadcast.setup(contacts=10, wanting=lambda n: True)
    busy = ProviderError("429 Too Many Requests", kind="temporary", retry_after=120)
    down = ProviderError("503 Service Unavailable", kind="temporary")
    faults = {"c-002": [busy], "c-007": [down, down]}
    _, state = await broadcast(page_size=5, faults=faults)
    assert (state.counters.sent, state.counters.failed, state.counters.deferred) == (10, 0, 0)
    assert sent_to(sessions) == {f"c-{n:03d}": 1 for n in range(10)}
    assert history_of(sessions, "c-007")[2] == [
        ("reserved", None), ("sending", None), ("reserved", "temporary"),
        ("sending", None), ("reserved", "temporary"), ("sending", None), ("sent", None),
    ]  # fmt: skip


async def test_a_refused_address_mid_page_goes_by_the_next_channel(broadcast, sessions):
    broadcast.setup(contacts=6, wanting=lambda n: True, sms=True)
    faults = {"c-003": [ProviderError("550 mailbox does not exist", kind="invalid_address")]}
    _, state = await broadcast(page_size=5, faults=faults)
    assert (state.counters.sent, state.counters.failed) == (6, 0)
    assert history_of(sessions, "c-003")[:2] == ("sent", "sms")
    with sessions() as session:
        assert session.scalars(select(Suppression.address)).all() == ["c3@example.com"]


async def test_a_refused_key_holds_a_broadcasts_messages_until_it_is_fixed(broadcast, sessions):
    broadcast.setup(contacts=4, wanting=lambda n: True)
    refused = ProviderError("401 Unauthorized: check SENDGRID_API_KEY", kind="auth")
    faults = {f"c-{n:03d}": [refused, refused, refused] for n in range(4)}
    _, state = await broadcast(page_size=5, faults=faults)
    assert (state.counters.sent, state.counters.failed) == (4, 0)
    assert sent_to(sessions) == {f"c-{n:03d}": 1 for n in range(4)}


async def test_a_broadcast_message_left_without_an_answer_is_uncertain_and_never_sent_again(broadcast, sessions):
    broadcast.setup(contacts=5, wanting=lambda n: True)
    provider_faults = {"c-001": [ProviderError("read timed out", kind="uncertain")]}
    _, state = await broadcast(page_size=5, faults=provider_faults)
    assert (state.counters.sent, state.counters.uncertain, state.counters.failed) == (4, 1, 0)
    status, _, history = history_of(sessions, "c-001")
    assert status == "uncertain" and [s for s, _ in history].count("sending") == 1


async def test_a_pause_while_deferred_messages_wait_holds_them_until_resumed(broadcast, sessions, time_skipping_env):
    now = await time_skipping_env.get_current_time()
    start, end = (now.hour - 1) % 24, (now.hour + 2) % 24
    broadcast.setup(policy=f"timezone: UTC\nquiet_hours: {{start: '{start:02d}:00', end: '{end:02d}:00'}}\n",
                    contacts=8, wanting=lambda n: True)  # fmt: skip
    client = time_skipping_env.client

    async def pause_while_waiting(workflow_id):
        handle = client.get_workflow_handle_for(BroadcastWorkflow.run, workflow_id)
        await eventually(lambda: handle.query(BroadcastWorkflow.progress), lambda s: s.counters.deferred == 8)
        await handle.signal(BroadcastWorkflow.pause)
        await eventually(lambda: handle.query(BroadcastWorkflow.progress), lambda s: s.paused)
        await time_skipping_env.sleep(timedelta(hours=6))  # quiet hours are long over
        assert sent_to(sessions) == {}
        await handle.signal(BroadcastWorkflow.resume)

    _, state = await broadcast(during=pause_while_waiting)
    assert (state.counters.sent, state.counters.deferred) == (8, 0)
    assert sent_to(sessions) == {f"c-{n:03d}": 1 for n in range(8)}
