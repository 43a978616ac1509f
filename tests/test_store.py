"""What the store guarantees on every database: unique keys, JSON documents, aware times."""

import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from carecast.intake.settlement import write_waiting
from carecast.store.models import Contact, Delivery, Event, Suppression

pytestmark = pytest.mark.store

NOW = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)


def test_contact_attributes_round_trip_as_json(sessions):
    with sessions.begin() as session:
        session.add(Contact(id="c-1", attributes={"first_name": "Ada", "orders": [1, 2], "vip": True}))
    with sessions() as session:
        assert session.get(Contact, "c-1").attributes == {"first_name": "Ada", "orders": [1, 2], "vip": True}


def test_times_come_back_aware_and_in_utc(sessions):
    paris = timezone(timedelta(hours=2))
    with sessions.begin() as session:
        session.add(Event(event_id="e-1", contact_id="c-1", name="signed_up", occurred_at=NOW.astimezone(paris)))
    with sessions() as session:
        occurred = session.scalar(select(Event.occurred_at))
    assert occurred == NOW
    assert occurred.utcoffset() == timedelta(0)


def test_naive_times_are_refused(sessions):
    with pytest.raises(Exception, match="naive datetime"), sessions.begin() as session:
        session.add(Event(event_id="e-1", contact_id="c-1", name="x", occurred_at=datetime(2026, 1, 1)))


def test_event_ids_are_unique(sessions):
    with sessions.begin() as session:
        session.add(Event(event_id="e-1", contact_id="c-1", name="signed_up", occurred_at=NOW))
    with pytest.raises(IntegrityError), sessions.begin() as session:
        session.add(Event(event_id="e-1", contact_id="c-1", name="signed_up", occurred_at=NOW))


def test_delivery_idempotency_keys_are_unique(sessions):
    row = dict(
        idempotency_key="journey/welcome/c-1/e-1/welcome_email/0", workflow_id="journey/welcome/c-1/e-1",
        campaign_id="welcome", campaign_version=1, category="transactional", step_id="welcome_email",
        contact_id="c-1", status="reserved",
    )  # fmt: skip
    with sessions.begin() as session:
        session.add(Delivery(**row))
    with pytest.raises(IntegrityError), sessions.begin() as session:
        session.add(Delivery(**row))


def test_one_suppression_per_channel_and_address(sessions):
    with sessions.begin() as session:
        session.add(Suppression(channel="email", address="ada@example.com", reason="hard_bounce"))
        session.add(Suppression(channel="sms", address="ada@example.com", reason="manual"))
    with pytest.raises(IntegrityError), sessions.begin() as session:
        session.add(Suppression(channel="email", address="ada@example.com", reason="spam_complaint"))


def test_a_session_that_only_reads_does_not_wait_for_a_writer(sessions):
    """`sessions()` reads its snapshot while a `sessions.begin()` writer holds the store (SQLite's write lock)."""
    with sessions.begin() as session:
        session.add(Contact(id="c-1"))
    read: list[str] = []

    def reader() -> None:
        with sessions() as session:
            read.extend(session.scalars(select(Contact.id)))

    with sessions.begin() as writer:
        writer.add(Contact(id="c-2"))
        writer.flush()  # the writer now holds the write lock until it commits
        thread = threading.Thread(target=reader)
        thread.start()
        thread.join(timeout=10)  # a reader that queued behind the writer would wait out the 30 s busy timeout
        assert not thread.is_alive() and read == ["c-1"]


def test_what_a_process_left_to_write_goes_only_with_a_session_that_writes(sessions):
    with sessions() as session, pytest.raises(TypeError, match=r"sessions.begin\(\), not sessions\(\)"):
        write_waiting(session)
