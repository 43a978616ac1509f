"""No database call runs on an event loop: not in the API's handlers, not in the worker's async activities.

A listener on the engine notes every statement issued from a thread that runs an
event loop while the API takes requests and journeys (one with a stage-moving
update step) run through a worker. Not a timing assertion: where, not how long.
"""

import asyncio
import traceback
import uuid
from dataclasses import replace
from datetime import timedelta
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import event
from twilio.request_validator import RequestValidator

from carecast.api.app import create_app
from carecast.channels.outbox import OutboxProvider
from carecast.worker import carecast_worker
from tests.factories import add_contact, deploy
from tests.skipping import skip_until_closed, terminate_running

pytestmark = pytest.mark.store

KEY = "no-blocking-key"
TOKEN = "twilio-test-token"
PHONE = "+14155550101"
PROMOTE = """\
id: promote
name: Promote
category: care
trigger: {event: signed_up}
steps:
  - {id: hello, send: {template: welcome, channels: [email]}}
  - {id: make_vip, update: {lifecycle_stage: vip}}
"""
VIP = """\
id: vip
name: VIP
category: care
trigger: {stage: vip}
steps:
  - {id: hi, send: {template: welcome, channels: [email]}}
"""


def on_an_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def test_no_statement_runs_on_an_event_loop_thread(time_skipping_env, settings, engine, sessions, tmp_path):
    campaigns = tmp_path / "campaigns"
    campaigns.mkdir()
    (campaigns / "promote.yaml").write_text(PROMOTE)
    (campaigns / "vip.yaml").write_text(VIP)
    contact = f"c-{uuid.uuid4().hex[:8]}"
    settings = replace(
        settings, api_key=KEY, twilio_auth_token=TOKEN, twilio_account_sid="AC" + "0" * 32,
        public_url="http://carecast", campaigns_dir=campaigns, task_queue=f"loops-{uuid.uuid4().hex[:6]}",
    )  # fmt: skip
    with sessions.begin() as session:
        deploy(session, settings.templates_dir, campaigns / "promote.yaml", campaigns / "vip.yaml")
        add_contact(session, contact, phone=PHONE, sms_consent=True)
    client = time_skipping_env.client

    async def temporal():
        return client

    app = create_app(settings, engine=engine, temporal=temporal)
    token = settings.link_signer().token(contact, version=0)
    inbound = {"MessageSid": "SM" + uuid.uuid4().hex, "From": PHONE, "To": "+15550000000", "Body": "hello"}
    signature = RequestValidator(TOKEN).compute_signature("http://carecast/webhooks/twilio/inbound", inbound)
    on_loop: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany):
        if on_an_event_loop():
            on_loop.append(f"{statement.split()[0]} …\n" + "".join(traceback.format_stack(limit=12)))

    provider = OutboxProvider(settings.outbox_dir, echo=lambda line: None)
    started: list[str] = []
    event.listen(engine, "before_cursor_execute", note)
    try:
        async with carecast_worker(client, settings, engine, provider) as worker, worker:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://carecast") as api:
                auth = {"Authorization": f"Bearer {KEY}"}
                body = {"event_id": f"e-{uuid.uuid4().hex[:8]}", "contact_id": contact, "name": "signed_up",
                        "occurred_at": "2026-12-01T09:00:00Z", "data": {}}  # fmt: skip
                answered = await api.post("/v1/events", json=body, headers=auth)
                started += answered.json()["started"]
                assert (await api.put(f"/v1/contacts/{contact}", json={"care_agent": "Maya"}, headers=auth)).is_success
                assert (await api.get(f"/u/{token}")).status_code == 200
                one_click = await api.post(f"/u/{settings.link_signer().token(contact, 'tips', version=0)}",
                                           content="List-Unsubscribe=One-Click")  # fmt: skip
                assert one_click.status_code == 200
                replied = await api.post(
                    "/webhooks/twilio/inbound", content=urlencode(inbound),
                    headers={"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"},
                )  # fmt: skip
                assert replied.status_code == 200
                assert (await api.get("/healthz")).status_code == 200
            [journey] = started
            await skip_until_closed(time_skipping_env, journey, step=timedelta(minutes=30))
            await asyncio.sleep(1.5)  # the worker's relay loop takes a round
    finally:
        event.remove(engine, "before_cursor_execute", note)
        await terminate_running(client, started)
    assert on_loop == []
