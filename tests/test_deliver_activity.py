"""The deliver activity: one message per idempotency key, whatever retries or replays do."""

from pathlib import Path

import pytest
from sqlalchemy import select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.deliver import DeliveryActivities
from carecast.channels.outbox import OutboxProvider
from carecast.render.templates import TemplateRenderer
from carecast.store.models import Delivery, Suppression
from tests.factories import add_contact
from workflows.contracts import DeliverInput

pytestmark = pytest.mark.store

ROOT = Path(__file__).resolve().parent.parent


def request(contact_id="c-1", channels=("email", "sms"), template="welcome"):
    return DeliverInput(
        workflow_id=f"journey/welcome/{contact_id}/e-1", campaign_id="welcome", campaign_version=1,
        category="transactional", step_id="welcome_email", template=template, channels=list(channels),
        contact_id=contact_id, trigger_event_id=None,
    )  # fmt: skip


@pytest.fixture
def printed():
    return []


@pytest.fixture
def deliver(sessions, tmp_path, printed):
    provider = OutboxProvider(tmp_path / "outbox", echo=printed.append)
    return DeliveryActivities(sessions, TemplateRenderer(ROOT / "templates"), provider).deliver


def run(deliver, req):
    return ActivityEnvironment().run(deliver, req)


def deliveries(sessions):
    with sessions() as session:
        return session.scalars(select(Delivery)).all()


def test_sends_by_email_and_records_the_provider_id(sessions, deliver, printed):
    with sessions.begin() as session:
        add_contact(session)
    result = run(deliver, request())
    [row] = deliveries(sessions)
    assert (result.status, result.channel) == ("sent", "email")
    assert (row.status, row.provider, row.provider_message_id) == ("sent", "outbox", f"outbox-{row.id}")
    assert [entry["status"] for entry in row.status_history] == ["reserved", "sent"]
    assert printed and printed[0].endswith("email  c-1  Welcome to Acme, Ada")


def test_a_retry_with_the_same_key_returns_the_recorded_result_without_sending(sessions, deliver, printed):
    with sessions.begin() as session:
        add_contact(session)
    first = run(deliver, request())
    second = run(deliver, request())
    assert first == second
    assert len(deliveries(sessions)) == 1
    assert len(printed) == 1


def test_falls_back_to_sms_when_the_email_is_suppressed(sessions, deliver):
    with sessions.begin() as session:
        add_contact(session, sms_consent=True)
        session.add(Suppression(channel="email", address="ada@example.com", reason="hard_bounce"))
    result = run(deliver, request())
    assert (result.status, result.channel) == ("sent", "sms")


def test_skips_with_a_reason_when_no_channel_is_usable(sessions, deliver, printed):
    with sessions.begin() as session:
        add_contact(session, email=None)
    result = run(deliver, request())
    assert (result.status, result.reason) == ("skipped", "no_address")
    assert deliveries(sessions)[0].status == "skipped"
    assert printed == []


def test_unknown_contact_is_skipped(sessions, deliver):
    result = run(deliver, request(contact_id="ghost"))
    assert (result.status, result.reason) == ("skipped", "unknown_contact")


def test_broken_template_fails_without_retry_and_records_why(sessions, deliver, tmp_path):
    with sessions.begin() as session:
        add_contact(session, attributes={})  # the welcome template needs first_name
    with pytest.raises(ApplicationError, match="first_name") as failure:
        run(deliver, request())
    assert failure.value.non_retryable
    [row] = deliveries(sessions)
    assert (row.status, row.reason) == ("failed", "template_error")
