"""A journey through the real SendGrid and Twilio clients, the spec-validating fakes and signed callbacks.

The delivery-delay campaign apologises on the contact's preferred channel, waits
two days, then follows up. Here the first message goes by SMS; the contact
replies STOP; the follow-up falls back to email. Every request the fakes receive
is checked against the official OpenAPI descriptions (the `fakes` fixture).
"""

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from carecast.api.app import create_app
from carecast.fakes.server import FakeProviders
from carecast.intake.ingest import ingest_event
from carecast.intake.record import IncomingEvent
from carecast.providers import build_provider
from carecast.store.models import Delivery, Suppression
from carecast.worker import carecast_worker
from tests.factories import add_contact, deploy
from tests.serving import serve
from tests.skipping import eventually, skip_until_closed, terminate_running
from workflows.journey.workflow import JourneyWorkflow

pytestmark = pytest.mark.store

PHONE = "+14155550101"
ZONES = ("Europe/Paris", "America/New_York", "America/Los_Angeles", "Asia/Tokyo", "Asia/Kolkata", "Pacific/Auckland")


async def daytime_zone(env) -> str:
    """A zone where the test server's "now" (skipped ahead by earlier tests) is well inside waking hours."""
    now = await env.get_current_time()
    return next(z for z in ZONES if 10 <= now.astimezone(ZoneInfo(z)).hour <= 18)


@pytest.fixture
async def wired(settings, engine, sessions, time_skipping_env):
    """carecast's API served on 127.0.0.1, fakes pointed at it, settings pointed at the fakes."""
    holder = {}

    async def temporal():
        return time_skipping_env.client

    def make_app(url):
        fakes = FakeProviders(sendgrid_webhook_url=f"{url}/webhooks/sendgrid",
                              twilio_inbound_url=f"{url}/webhooks/twilio/inbound")  # fmt: skip
        holder["fakes"] = fakes
        holder["settings"] = replace(
            settings,
            task_queue=f"channels-{uuid.uuid4().hex[:6]}",
            public_url=url,
            sendgrid_api_key=fakes.sendgrid.api_key,
            sendgrid_webhook_public_key=fakes.sendgrid.signer.public_key,
            twilio_account_sid=fakes.twilio.account_sid,
            twilio_auth_token=fakes.twilio.auth_token,
            twilio_from_number=fakes.twilio.number,
        )
        return create_app(holder["settings"], engine=engine, temporal=temporal)

    async with serve(make_app) as _url:
        fakes = holder["fakes"]
        with fakes:
            configured = replace(holder["settings"], sendgrid_api_host=fakes.url, twilio_api_base_url=fakes.url)
            yield fakes, configured
        assert [(r.path, r.errors) for r in fakes.invalid] == []


def deliveries(sessions) -> list[Delivery]:
    with sessions() as session:
        return list(session.scalars(select(Delivery).order_by(Delivery.id)))


async def deploy_and_add(env, sessions, settings, contact_id, email, phone):
    """The delivery-delay campaign, and a contact who prefers SMS, then email, awake at the test server's "now"."""
    zone = await daytime_zone(env)
    with sessions.begin() as session:
        deploy(session, settings.templates_dir, settings.campaigns_dir / "delivery_delay.yaml")
        add_contact(session, contact_id, email=email, phone=phone, sms_consent=True, preferred=("sms", "email"),
                    timezone=zone)  # fmt: skip


async def start_delay_journey(client, sessions, settings, contact_id):
    event = IncomingEvent(f"e-{uuid.uuid4().hex[:8]}", contact_id, "delivery_delayed", datetime.now(UTC),
                          {"order_id": "A-1", "new_eta": "Friday"})  # fmt: skip
    result = await ingest_event(client, sessions, settings.task_queue, event)
    [workflow_id] = result.started
    return workflow_id


async def deliver_after_the_first_follow_up(env, sessions, settings, contact_id, workflow_id):
    """Skips past the first follow-up (day 2), then the parcel arrives and the journey ends."""
    await env.sleep(timedelta(days=2, hours=12))
    event = IncomingEvent(f"e-{uuid.uuid4().hex[:8]}", contact_id, "order_delivered", datetime.now(UTC),
                          {"order_id": "A-1"})  # fmt: skip
    await ingest_event(env.client, sessions, settings.task_queue, event)
    await skip_until_closed(env, workflow_id)


async def test_stop_by_sms_moves_the_next_message_of_a_running_journey_to_email(
    wired, time_skipping_env, engine, sessions
):
    fakes, settings = wired
    client = time_skipping_env.client
    await deploy_and_add(time_skipping_env, sessions, settings, "c-1", "ada@example.com", PHONE)
    started = []
    try:
        async with carecast_worker(client, settings, engine, build_provider(settings)) as worker, worker:
            with time_skipping_env.auto_time_skipping_disabled():
                started.append(await start_delay_journey(client, sessions, settings, "c-1"))

                async def read():
                    return deliveries(sessions)

                await eventually(read, lambda rows: rows and rows[0].status == "sent", attempts=200)
                fakes.inbound_sms(PHONE, "Stop")
                assert [d.status for d in await asyncio.to_thread(fakes.flush_callbacks)] == [204, 204, 200]
            await deliver_after_the_first_follow_up(time_skipping_env, sessions, settings, "c-1", started[0])
            outcome = await client.get_workflow_handle_for(JourneyWorkflow.run, started[0]).result()
        assert [d.status for d in await asyncio.to_thread(fakes.flush_callbacks)] == [200]  # SendGrid's events
    finally:
        await terminate_running(client, started)

    sends = [(s.step_id, s.status, s.channel) for s in outcome.history if s.step_id in ("apologise", "follow_up")]
    assert sends == [("apologise", "sent", "sms"), ("follow_up", "sent", "email")]
    [sms] = fakes.received_by("twilio", "/Messages.json")
    [email] = fakes.received_by("sendgrid")
    sms_row, email_row = deliveries(sessions)
    assert sms.body["To"] == PHONE and sms.body["StatusCallback"].endswith(f"?delivery={sms_row.id}")
    assert email.body["custom_args"]["delivery_id"] == str(email_row.id)
    assert "List-Unsubscribe=One-Click" in email.body["headers"]["List-Unsubscribe-Post"]
    assert (sms_row.provider, sms_row.segments, sms_row.status) == ("twilio", 1, "delivered")
    assert sms_row.provider_message_id.startswith("SM") and email_row.provider_message_id
    assert (email_row.provider, email_row.status) == ("sendgrid", "delivered")


async def test_a_number_twilio_says_opted_out_is_suppressed_and_the_step_falls_back_to_email(
    wired, time_skipping_env, engine, sessions
):
    fakes, settings = wired
    client = time_skipping_env.client
    opted_out = "+15005550004"  # Twilio answers 21610 for it
    await deploy_and_add(time_skipping_env, sessions, settings, "c-2", "bo@example.com", opted_out)
    started = []
    try:
        async with carecast_worker(client, settings, engine, build_provider(settings)) as worker, worker:
            started.append(await start_delay_journey(client, sessions, settings, "c-2"))
            await deliver_after_the_first_follow_up(time_skipping_env, sessions, settings, "c-2", started[0])
            outcome = await client.get_workflow_handle_for(JourneyWorkflow.run, started[0]).result()
    finally:
        await terminate_running(client, started)
    sends = [(s.step_id, s.status, s.channel) for s in outcome.history if s.step_id in ("apologise", "follow_up")]
    assert sends == [("apologise", "sent", "email"), ("follow_up", "sent", "email")]
    assert len(fakes.received_by("twilio")) == 1  # asked once, never again
    with sessions() as session:
        assert session.scalars(select(Suppression.reason).where(Suppression.address == opted_out)).all() == ["stop"]


async def test_an_apology_sendgrid_took_but_did_not_answer_is_sent_once_more_and_no_more(
    wired, time_skipping_env, engine, sessions
):
    fakes, settings = wired
    settings = replace(settings, provider_timeout_seconds=0.5)
    client = time_skipping_env.client
    contact = f"c-{uuid.uuid4().hex[:8]}"  # the test server is shared: a workflow id of this test's own
    await deploy_and_add(time_skipping_env, sessions, settings, contact, "ada@example.com", phone=None)
    fakes.fail_next("sendgrid", 202, delay=1.5)  # accepted, but the answer comes after the client gave up
    started = []
    try:
        async with carecast_worker(client, settings, engine, build_provider(settings)) as worker, worker:
            started.append(await start_delay_journey(client, sessions, settings, contact))
            await deliver_after_the_first_follow_up(time_skipping_env, sessions, settings, contact, started[0])
            outcome = await client.get_workflow_handle_for(JourneyWorkflow.run, started[0]).result()
    finally:
        await terminate_running(client, started)

    sends = [(s.step_id, s.status) for s in outcome.history if s.step_id in ("apologise", "follow_up")]
    assert sends == [("apologise", "sent"), ("follow_up", "sent")]
    apology, follow_up = deliveries(sessions)
    assert [h["status"] for h in apology.status_history] == ["reserved", "sending", "uncertain", "sending", "sent"]
    received = [r.body["custom_args"]["delivery_id"] for r in fakes.received_by("sendgrid")]
    assert received == [str(apology.id), str(apology.id), str(follow_up.id)]  # one duplicate, owned up to


async def test_an_apology_waits_out_a_wrong_sendgrid_key_and_goes_once_it_is_fixed(
    wired, time_skipping_env, engine, sessions
):
    fakes, settings = wired
    client = time_skipping_env.client
    contact = f"c-{uuid.uuid4().hex[:8]}"
    await deploy_and_add(time_skipping_env, sessions, settings, contact, "ada@example.com", phone=None)
    router = build_provider(replace(settings, sendgrid_api_key="SG.a-slip-of-the-operator"))
    started = []
    try:
        async with carecast_worker(client, settings, engine, router) as worker, worker:
            with time_skipping_env.auto_time_skipping_disabled():
                started.append(await start_delay_journey(client, sessions, settings, contact))

                async def refused():
                    return [r.status for r in fakes.received_by("sendgrid")]

                await eventually(refused, lambda statuses: statuses[:1] == [401], attempts=200)
            # The operator fixes the key (in production: the setting, and a restart of the workers).
            router.providers = build_provider(settings).providers
            await time_skipping_env.sleep(timedelta(minutes=1))  # past the next try, 30 s after the refusal
            await eventually(lambda: asyncio.to_thread(deliveries, sessions),
                             lambda rows: rows and rows[0].status == "sent", attempts=200)  # fmt: skip
    finally:
        await terminate_running(client, started)

    [apology] = deliveries(sessions)
    assert [h["status"] for h in apology.status_history][-2:] == ["sending", "sent"]
    assert any(h.get("kind") == "auth" for h in apology.status_history)  # the refusals are on record
    assert [r.status for r in fakes.received_by("sendgrid")][-1] == 202
