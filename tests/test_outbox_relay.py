"""The outbox relay on a real dev server: what Temporal did not hear is delivered when it answers again."""

import asyncio
import socket
import uuid
from dataclasses import replace

import pytest
from sqlalchemy import func, select

from carecast.api.app import create_app
from carecast.channels.outbox import OutboxProvider
from carecast.dev import start_dev_server, stop_process
from carecast.fakes.server import FakeProviders
from carecast.intake.ingest import ingest_event
from carecast.intake.record import IncomingEvent
from carecast.store.models import Enrolment, JourneySignal, utcnow
from carecast.worker import carecast_worker
from tests.factories import add_contact, deploy
from tests.serving import serve
from tests.skipping import until_started

pytestmark = pytest.mark.integration

PHONE = "+14155550101"
REPLY = """\
id: reply_thanks
name: Reply thanks
category: care
trigger: {event: sms_replied}
steps:
  - id: thanks
    send: {template: note, channels: [email]}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_an_inbound_reply_during_a_temporal_outage_starts_its_journey_once_temporal_is_back(
    settings, engine, sessions, tmp_path
):
    campaigns, templates = tmp_path / "campaigns", tmp_path / "templates"
    campaigns.mkdir()
    templates.mkdir()
    (campaigns / "reply_thanks.yaml").write_text(REPLY)
    (templates / "note.email.subject.j2").write_text("Thanks")
    (templates / "note.email.txt.j2").write_text("Thanks for your reply.")
    port = free_port()
    settings = replace(
        settings, temporal_port=port, temporal_ui_port=free_port(), temporal_address=f"127.0.0.1:{port}",
        task_queue=f"outage-{uuid.uuid4().hex[:6]}", campaigns_dir=campaigns, templates_dir=templates,
    )  # fmt: skip
    with sessions.begin() as session:
        deploy(session, templates, campaigns / "reply_thanks.yaml")
        add_contact(session, "c-1", phone=PHONE, sms_consent=True)
    server, client = await start_dev_server(settings)
    holder = {}

    def make_app(url):
        holder["fakes"] = fakes = FakeProviders(twilio_inbound_url=f"{url}/webhooks/twilio/inbound")
        configured = replace(settings, public_url=url, twilio_account_sid=fakes.twilio.account_sid,
                             twilio_auth_token=fakes.twilio.auth_token)  # fmt: skip
        return create_app(configured, engine=engine)

    provider = OutboxProvider(settings.outbox_dir, echo=lambda line: None)
    try:
        async with carecast_worker(client, settings, engine, provider) as worker, worker, serve(make_app) as _url:
            with holder["fakes"] as fakes:
                stop_process(server)  # Temporal goes away
                fakes.inbound_sms(PHONE, "Where is my parcel?")
                [answered] = await asyncio.to_thread(fakes.flush_callbacks)
                assert answered.status == 200  # Twilio is answered: the reply is stored, not lost
                with sessions() as session:
                    [workflow_id] = session.scalars(select(Enrolment.workflow_id)).all()
                    assert session.scalar(select(func.count()).select_from(JourneySignal)) == 1
                server, _ = await start_dev_server(settings)  # back, with its history
                await until_started(client, workflow_id)  # the worker's relay, nobody else
                await client.get_workflow_handle(workflow_id).result()
        with sessions() as session:
            assert session.scalar(select(func.count()).select_from(JourneySignal)) == 0
        assert len(list(settings.outbox_dir.glob("*.eml"))) == 1
    finally:
        stop_process(server)


@pytest.mark.store
async def test_a_row_temporal_refused_is_kept_with_its_error_for_a_later_round(sessions, settings, tmp_path):
    class Down:
        def get_workflow_handle(self, workflow_id):
            raise RuntimeError("Failed client connect: connection refused")

        async def start_workflow(self, *args, **kwargs):
            raise RuntimeError("Failed client connect: connection refused")

    campaigns = tmp_path / "campaigns"
    campaigns.mkdir()
    (campaigns / "reply_thanks.yaml").write_text(REPLY.replace("template: note", "template: welcome"))
    with sessions.begin() as session:
        deploy(session, settings.templates_dir, campaigns / "reply_thanks.yaml")
        add_contact(session, "c-1")
    event = IncomingEvent("e-1", "c-1", "sms_replied", utcnow(), {"body": "hi"})
    result = await ingest_event(Down(), sessions, "unused", event)
    assert result.started == [] and len(result.queued) == 1
    with sessions() as session:
        [row] = session.scalars(select(JourneySignal)).all()
    assert row.attempts == 1 and "connection refused" in row.last_error
    assert (row.next_attempt_at - utcnow()).total_seconds() > 0
