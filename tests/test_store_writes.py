"""Upserts and row locks behave the same on SQLite and PostgreSQL."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from carecast.store.models import Contact, Delivery, utcnow
from carecast.store.writes import COPY_FROM_ROWS, bulk_insert, lock_contacts, upsert

pytestmark = pytest.mark.store


def test_upsert_inserts_then_updates_only_the_named_columns(sessions):
    with sessions.begin() as session:
        upsert(session, Contact, [{"id": "c-1", "email": "old@example.com", "locale": "en", "attributes": {}}], ["id"])
    with sessions.begin() as session:
        changed = upsert(
            session, Contact,
            [{"id": "c-1", "email": "new@example.com", "locale": "fr", "attributes": {}},
             {"id": "c-2", "email": "two@example.com", "locale": "de", "attributes": {}}],
            conflict_columns=["id"], update_columns=["email"],
        )  # fmt: skip
    with sessions() as session:
        rows = {c.id: (c.email, c.locale) for c in session.scalars(select(Contact))}
    assert changed == 2
    assert rows == {"c-1": ("new@example.com", "en"), "c-2": ("two@example.com", "de")}


def test_bulk_insert_keeps_json_times_and_nulls(sessions):
    """Enough rows for COPY on PostgreSQL."""
    at = utcnow()
    rows = [
        dict(id=n, idempotency_key=f"k-{n}", workflow_id="w", campaign_id="offer", campaign_version=1,
             category="marketing", step_id="send", contact_id=f"c-{n}", template=None, status="sending",
             reason=None, channel="email", sent_at=at, status_history=[{"status": "sending", "note": "é, \\ and \t"}],
             created_at=at, updated_at=at)
        for n in range(1, COPY_FROM_ROWS + 1)
    ]  # fmt: skip
    with sessions.begin() as session:
        bulk_insert(session, Delivery.__table__, rows)
    with sessions() as session:
        stored = session.scalars(select(Delivery).order_by(Delivery.id)).all()
    assert [(d.id, d.idempotency_key, d.template, d.sent_at) for d in stored] == [
        (n, f"k-{n}", None, at) for n in range(1, COPY_FROM_ROWS + 1)
    ]
    assert stored[0].status_history == [{"status": "sending", "note": "é, \\ and \t"}]


def test_upsert_without_update_columns_leaves_existing_rows_alone(sessions):
    row = {"id": "c-1", "email": "first@example.com", "attributes": {}}
    with sessions.begin() as session:
        assert upsert(session, Contact, [row], ["id"]) == 1
    with sessions.begin() as session:
        assert upsert(session, Contact, [{**row, "email": "second@example.com"}], ["id"]) == 0
    with sessions() as session:
        assert session.scalar(select(Contact.email)) == "first@example.com"
        assert session.scalar(select(func.count()).select_from(Contact)) == 1


def test_locked_read_modify_write_loses_no_update_under_concurrency(sessions):
    with sessions.begin() as session:
        session.add(Contact(id="c-1", attributes={"n": 0}))

    def increment(_):
        with sessions.begin() as session:
            contact = lock_contacts(session, ["c-1"])["c-1"]
            seen = contact.attributes["n"]
            time.sleep(0.002)  # widen the race window an unlocked version would lose in
            contact.attributes = {"n": seen + 1}

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(increment, range(40)))
    with sessions() as session:
        assert session.get(Contact, "c-1").attributes == {"n": 40}
