"""Upserts and row locks behave the same on SQLite and PostgreSQL."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from carecast.store.models import Contact
from carecast.store.writes import lock_contacts, upsert

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
