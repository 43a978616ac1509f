"""A worker killed in the middle of a 5,000-contact broadcast: a new one finishes it, and every
contact gets exactly one message. Real dev server, real worker processes (SIGKILL, no goodbye)."""

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from carecast.store.models import Contact, Delivery, Preferences
from tests.factories import deploy
from workflows.broadcast import BroadcastWorkflow
from workflows.broadcast_contract import BroadcastInput

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
CONTACTS = 5000
OFFER = """\
id: crash_offer
name: Crash offer
category: marketing
topic: offers
audience: {attributes.wants: {eq: true}}
send: {template: offer, channels: [email]}
"""


def start_worker(env):
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("carecast")), "worker"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def counts(sessions):
    with sessions() as session:
        rows = session.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all()
    return dict(rows)


async def test_killing_the_worker_mid_broadcast_sends_everyone_exactly_once(
    dev_server_env, database_url, engine, sessions, tmp_path
):
    campaigns, templates = tmp_path / "campaigns", tmp_path / "templates"
    campaigns.mkdir()
    templates.mkdir()
    (campaigns / "crash_offer.yaml").write_text(OFFER)
    (templates / "offer.email.subject.j2").write_text("An offer")
    (templates / "offer.email.txt.j2").write_text("Hello {{ contact.id }}. {{ unsubscribe_url }}")
    now = datetime.now(UTC)
    with sessions.begin() as session:
        deploy(session, templates, campaigns / "crash_offer.yaml")
        session.execute(insert(Contact.__table__), [
            dict(id=f"c-{n:05d}", email=f"c{n}@example.com", timezone="UTC", attributes={"wants": True},
                 created_at=now, updated_at=now) for n in range(CONTACTS)
        ])  # fmt: skip
        session.execute(insert(Preferences.__table__), [
            dict(contact_id=f"c-{n:05d}", email_consent=True, sms_consent=False, voice_consent=False,
                 preferred_channels=[], topics={}, send_windows=[], updated_at=now) for n in range(CONTACTS)
        ])  # fmt: skip
    task_queue = f"crash-{uuid.uuid4().hex[:6]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CARECAST_", "SENDGRID_", "TWILIO_"))}
    env.update(
        CARECAST_HOME=str(tmp_path / "home"),
        CARECAST_DATABASE_URL=database_url,
        CARECAST_TEMPORAL_ADDRESS=dev_server_env.client.service_client.config.target_host,
        CARECAST_TASK_QUEUE=task_queue,
        CARECAST_CAMPAIGNS_DIR=str(campaigns),
        CARECAST_TEMPLATES_DIR=str(templates),
        CARECAST_SECRET_KEY="crash-test-" + "s" * 32,
    )
    client = dev_server_env.client
    workflow_id = f"broadcast/crash_offer/{uuid.uuid4().hex[:6]}"
    first = start_worker(env)
    second = None
    try:
        await client.start_workflow(
            BroadcastWorkflow.run,
            BroadcastInput("crash_offer", 1),
            id=workflow_id,
            task_queue=f"{task_queue}-broadcasts",
        )
        deadline = time.monotonic() + 120
        while counts(sessions).get("sent", 0) < CONTACTS // 4:
            assert time.monotonic() < deadline and first.poll() is None, first.stderr.read() if first.poll() else "slow"
            await asyncio.sleep(0.2)
        first.send_signal(signal.SIGKILL)
        first.wait()
        at_kill = counts(sessions)
        second = start_worker(env)
        state = await asyncio.wait_for(client.get_workflow_handle_for(BroadcastWorkflow.run, workflow_id).result(), 300)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(30)

    assert 0 < at_kill.get("sent", 0) < CONTACTS  # the kill landed in the middle
    with sessions() as session:
        per_contact = dict(
            session.execute(select(Delivery.contact_id, func.count()).group_by(Delivery.contact_id)).all()
        )
    assert len(per_contact) == CONTACTS and set(per_contact.values()) == {1}
    assert counts(sessions) == {"sent": CONTACTS}
    assert state.counters.audience == CONTACTS
    assert len(list((tmp_path / "home" / "outbox").glob("*.eml"))) == CONTACTS
