"""An old preference link brings a fresh one to the address on file: API, dev server, worker and outbox."""

import asyncio
import email
import re
import uuid
from dataclasses import replace
from datetime import timedelta
from email.policy import default as email_policy
from pathlib import Path

import httpx
import pytest

from carecast.api.app import create_app
from carecast.channels.outbox import OutboxProvider
from carecast.store.models import Preferences, utcnow
from carecast.worker import carecast_worker
from tests.factories import add_contact, deploy

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent


async def test_an_old_link_brings_a_fresh_one_that_may_turn_things_on(dev_server_env, settings, engine, sessions):
    settings = replace(settings, task_queue=f"fresh-link-{uuid.uuid4().hex[:6]}", secret_key="k" * 32)
    with sessions.begin() as session:
        deploy(session, settings.templates_dir, ROOT / "campaigns" / "preference_link.yaml")
        add_contact(session, "c-1", email="ada@example.com", phone="+14155550101")

    async def temporal():
        return dev_server_env.client

    app = create_app(settings, engine=engine, temporal=temporal)
    links = settings.link_signer()
    old = links.token("c-1", issued_at=utcnow() - timedelta(days=120), version=0)
    sms_on = {"action": "save", "consent": ["email", "sms"], "preferred": "", "quiet_start": "", "quiet_end": "",
              "pause_weeks": "0"}  # fmt: skip
    printed: list[str] = []
    provider = OutboxProvider(settings.outbox_dir, echo=printed.append)
    async with (
        carecast_worker(dev_server_env.client, settings, engine, provider) as worker,
        worker,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://carecast") as client,
    ):
        assert (await client.post(f"/u/{old}", data=sms_on)).status_code == 403
        asked = await client.post(f"/u/{old}", data={"action": "send_link"})
        assert asked.status_code == 200 and "We are sending a fresh link" in asked.text
        for _ in range(200):
            if printed:
                break
            await asyncio.sleep(0.05)
        [sent] = settings.outbox_dir.glob("*-email.eml")
        message = email.message_from_bytes(sent.read_bytes(), policy=email_policy)
        assert message["To"] == "ada@example.com"
        body = message.get_body(("plain",)).get_content()
        fresh = re.search(r"https?://[^/\s]+(/u/[A-Za-z0-9_-]+)", body).group(1)
        assert fresh != f"/u/{old}"
        assert (await client.post(fresh, data=sms_on)).status_code == 303
    with sessions() as session:
        assert session.get(Preferences, "c-1").sms_consent is True
