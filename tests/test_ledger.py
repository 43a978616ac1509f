"""The delivery ledger's statuses and moves, and provider news applied only where the ledger allows it."""

from datetime import timedelta

import pytest

from carecast.delivery.ledger import FEEDBACK, FINAL, MOVES, IllegalMove, Row, Status, may_move, move
from carecast.feedback import apply_sendgrid_events
from carecast.store.models import Delivery, utcnow
from tests.factories import add_contact


def test_every_status_has_its_moves_and_settled_ones_move_only_on_provider_news():
    assert set(MOVES) == set(Status)
    for status in FINAL - {Status.UNCERTAIN}:
        assert MOVES[status] <= FEEDBACK, status
    for never_handed_over in (Status.SKIPPED, Status.FAILED, Status.HOLDOUT, Status.RESERVED, Status.DEFERRED):
        assert not MOVES[never_handed_over] & FEEDBACK


def test_a_move_the_ledger_does_not_allow_is_a_defect_that_changes_nothing():
    row = Row.new("k-1")
    move(row, Status.SKIPPED, "no_consent")
    with pytest.raises(IllegalMove, match="skipped -> sending"):
        move(row, Status.SENDING)
    assert row.status == Status.SKIPPED and [e["status"] for e in row.status_history] == ["reserved", "skipped"]


def test_an_uncertain_message_may_be_resent_once_or_settled_by_the_providers_news():
    assert may_move(Status.UNCERTAIN, Status.SENDING) and may_move(Status.UNCERTAIN, Status.DELIVERED)
    assert not may_move(Status.SENT, Status.SENDING)


def stored(sessions, status, reason=None, retry_at=None) -> int:
    with sessions.begin() as session:
        add_contact(session)
        row = Delivery(idempotency_key="k", workflow_id="w", campaign_id="welcome", campaign_version=1,
                       category="transactional", step_id="s", contact_id="c-1", channel="email", status=status,
                       reason=reason, retry_at=retry_at, sent_at=utcnow(), status_history=[])  # fmt: skip
        session.add(row)
    return row.id


@pytest.mark.store
def test_news_of_a_message_never_handed_over_is_noted_and_changes_nothing(sessions):
    delivery_id = stored(sessions, "skipped", "no_consent")
    with sessions.begin() as session:
        apply_sendgrid_events(session, [{"event": "delivered", "sg_event_id": "e-1", "delivery_id": delivery_id}], {})
    with sessions() as session:
        row = session.get(Delivery, delivery_id)
        assert row.status == "skipped" and row.status_history[-1]["event"] == "delivered"


@pytest.mark.store
def test_delivered_news_settles_a_confirmation_that_was_waiting_for_its_resend(sessions):
    due = utcnow() + timedelta(minutes=2)
    delivery_id = stored(sessions, "uncertain", "no_answer_resend_due", retry_at=due)
    with sessions.begin() as session:
        apply_sendgrid_events(session, [{"event": "delivered", "sg_event_id": "e-2", "delivery_id": delivery_id}], {})
    with sessions() as session:
        row = session.get(Delivery, delivery_id)
        assert (row.status, row.retry_at) == ("delivered", None)  # the resend will find it settled


@pytest.mark.store
def test_news_that_beats_the_record_settles_the_attempts_reason_too(sessions):
    delivery_id = stored(sessions, "sending", "handing_over", retry_at=utcnow() + timedelta(minutes=1))
    with sessions.begin() as session:
        apply_sendgrid_events(session, [{"event": "delivered", "sg_event_id": "e-3", "delivery_id": delivery_id}], {})
    with sessions() as session:
        row = session.get(Delivery, delivery_id)
        assert (row.status, row.reason, row.retry_at) == ("delivered", None, None)
