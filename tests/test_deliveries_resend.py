"""`carecast deliveries resend ID` on a real dev server and worker: once, with the event's data, never marketing."""

import asyncio
import os
import subprocess
import sys
import uuid
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from carecast.channels.outbox import OutboxProvider
from carecast.store.models import Delivery, Enrolment, Event, utcnow
from carecast.worker import carecast_worker
from tests.factories import add_contact, cli_environment, deploy
from tests.skipping import record_history

pytestmark = pytest.mark.integration

CARECAST = str(Path(sys.executable).with_name("carecast"))
ROOT = Path(__file__).resolve().parent.parent


async def cli(env, *args):
    process = await asyncio.create_subprocess_exec(
        CARECAST, "deliveries", "resend", *args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await process.communicate()
    return process.returncode, out.decode(), err.decode()


def delivery(n, category, status, campaign_id="order_confirmation", step_id="confirm_email", reason="no_answer",
             retry_at=None):  # fmt: skip
    return Delivery(
        idempotency_key=f"journey/{campaign_id}/c-1/A-{n}/{step_id}/c-1/0",
        workflow_id=f"journey/{campaign_id}/c-1/A-{n}", campaign_id=campaign_id, campaign_version=1,
        category=category, step_id=step_id, contact_id="c-1",
        channel="email", status=status, reason=reason, retry_at=retry_at, sent_at=utcnow(), status_history=[],
    )  # fmt: skip


@pytest.fixture
def environment(dev_server_env, settings, database_url, tmp_path):
    settings = replace(settings, task_queue=f"resend-{uuid.uuid4().hex[:6]}")
    env = cli_environment(tmp_path, database_url, dev_server_env, settings.task_queue)
    return settings, env


async def test_an_uncertain_confirmation_is_resent_once_with_its_orders_data(
    environment, dev_server_env, engine, sessions
):
    settings, env = environment
    with sessions.begin() as session:
        deploy(session, settings.templates_dir, ROOT / "campaigns" / "order_confirmation.yaml")
        add_contact(session)
        session.add(Event(event_id="e-1", contact_id="c-1", name="order_placed", occurred_at=utcnow(),
                          data={"order_id": "A-1042", "total": "$84.00"}))  # fmt: skip
        session.add(Enrolment(campaign_id="order_confirmation", campaign_version=1, contact_id="c-1", entry_key="A-1",
                              workflow_id="journey/order_confirmation/c-1/A-1", trigger_event_id="e-1"))  # fmt: skip
        session.add(left := delivery(1, "transactional", "uncertain"))
    printed = []
    provider = OutboxProvider(settings.outbox_dir, echo=printed.append)
    async with carecast_worker(dev_server_env.client, settings, engine, provider) as worker, worker:
        code, out, err = await cli(env, str(left.id))
        assert code == 0, err
        assert out.strip().startswith("sent by email: delivery ") and f"resend/{left.id}" in out
        again, out_again, _ = await cli(env, str(left.id))
        if os.environ.get("CARECAST_RECORD_HISTORIES"):
            await record_history(dev_server_env.client.get_workflow_handle(f"resend/{left.id}"), "Resend")
    assert again == 0 and "was resent before" in out_again and "sent by email" in out_again
    assert len(printed) == 1 and "Order A-1042 confirmed" in printed[0]


@pytest.mark.parametrize(
    ("category", "status", "reason", "says"),
    [
        ("marketing", "uncertain", "no_answer", "only transactional and care messages are resent"),
        ("transactional", "sent", None, "only uncertain or failed messages are resent"),
        ("transactional", "uncertain", "no_answer_resend_due", "is to be sent again automatically"),
    ],
)
async def test_marketing_a_message_already_sent_or_one_due_its_own_resend_is_refused_and_nothing_starts(
    environment, sessions, category, status, reason, says
):
    _, env = environment
    retry_at = utcnow() + timedelta(minutes=2) if reason == "no_answer_resend_due" else None
    with sessions.begin() as session:
        add_contact(session)
        session.add(left := delivery(2, category, status, reason=reason, retry_at=retry_at))
    code, out, err = await cli(env, str(left.id))
    assert code == 1 and says in err and out == ""


async def test_an_unknown_delivery_says_where_to_find_one(environment, sessions):
    _, env = environment
    code, _, err = await cli(env, "999999")
    assert code == 1 and "carecast deliveries list" in err
