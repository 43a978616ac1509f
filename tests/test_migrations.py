"""The store's schema: created from nothing by Alembic, identical to the models, reversible."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select

from carecast.intake.record import entry_key_of
from carecast.store.db import make_engine, make_sessionmaker
from carecast.store.migrate import downgrade, upgrade
from carecast.store.models import Base, DeliveryEvent, Enrolment

pytestmark = pytest.mark.store

TABLES = {
    "contacts", "preferences", "consent_records", "suppressions", "events", "deliveries", "campaign_versions",
}  # fmt: skip


@pytest.fixture
def empty_engine(database_url):
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def test_upgrade_creates_every_table_on_an_empty_database(empty_engine):
    upgrade(empty_engine)
    assert set(inspect(empty_engine).get_table_names()) >= TABLES


def test_migrations_match_the_models_exactly(empty_engine):
    upgrade(empty_engine)
    with empty_engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_upgrade_twice_is_harmless(empty_engine):
    upgrade(empty_engine)
    upgrade(empty_engine)
    assert set(inspect(empty_engine).get_table_names()) >= TABLES


def test_downgrade_to_base_and_back_up(empty_engine):
    upgrade(empty_engine)
    downgrade(empty_engine, "base")
    assert not TABLES & set(inspect(empty_engine).get_table_names())
    upgrade(empty_engine)
    assert set(inspect(empty_engine).get_table_names()) >= TABLES


def test_enrolments_made_before_routing_get_what_their_own_version_listens_to(empty_engine):
    from sqlalchemy import text

    upgrade(empty_engine, "0006")
    spec = {"id": "apology", "exit_on": ["order_delivered"], "goal": {"event": "order_placed", "within": "1d"},
            "entry": {"key": "order_id"}, "trigger": {"event": "delivery_delayed"},
            "steps": [{"id": "w", "wait_for": {"event": "replied", "timeout": "1d"}}]}  # fmt: skip
    with empty_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO campaign_versions (campaign_id, version, content_hash, spec, active, deployed_at) "
                "VALUES ('apology', 1, 'h1', :spec, true, '2026-11-01 00:00:00')"
            ),  # fmt: skip
            {"spec": json.dumps(spec)},
        )
        connection.execute(
            text(
                "INSERT INTO enrolments (campaign_id, campaign_version, contact_id, entry_key, workflow_id, holdout, "
                "enrolled_at) VALUES ('apology', 1, 'c-1', 'A#1', 'journey/apology/c-1/A#1', false, "
                "'2026-11-02 00:00:00')"
            ),  # fmt: skip
        )
    upgrade(empty_engine)
    with empty_engine.connect() as connection:
        key_field, listens_to, started_at, entry_key, workflow_id = connection.execute(
            text("SELECT key_field, listens_to, started_at, entry_key, workflow_id FROM enrolments")
        ).one()
    assert key_field == "order_id" and started_at is not None
    # routing compares the safe form of a key; the journey keeps the workflow id it was started with
    assert (entry_key, workflow_id) == (entry_key_of("A#1"), "journey/apology/c-1/A#1")
    listens = json.loads(listens_to) if isinstance(listens_to, str) else listens_to
    assert listens == ["order_delivered", "order_placed", "replied"]


def test_messages_deferred_before_retry_at_are_due_at_once_after_the_upgrade(empty_engine):
    from sqlalchemy import text

    upgrade(empty_engine, "0007")
    with empty_engine.begin() as connection:
        for key, status in (("k-deferred", "deferred"), ("k-sent", "sent")):
            connection.execute(
                text(
                    "INSERT INTO deliveries (idempotency_key, workflow_id, campaign_id, campaign_version, category, "
                    "step_id, contact_id, status, status_history, created_at, updated_at) VALUES (:key, 'broadcast/"
                    "offer/r1', 'offer', 1, 'marketing', 'send', 'c-1', :status, '[]', '2026-11-02 00:00:00', "
                    "'2026-11-02 00:00:00')"
                ),
                {"key": key, "status": status},
            )
    upgrade(empty_engine)
    with empty_engine.connect() as connection:
        rows = dict(connection.execute(text("SELECT idempotency_key, retry_at FROM deliveries")).all())
    assert rows["k-deferred"] is not None and rows["k-sent"] is None


def test_report_rows_are_filled_from_what_was_stored_before_them(empty_engine):
    """Goal windows from each entry's own version; opens, clicks and deferrals from the deliveries' histories."""
    from sqlalchemy import text

    upgrade(empty_engine, "0010")
    spec = {"id": "apology", "goal": {"event": "order_placed", "within": "2d12h"}, "trigger": {"event": "late"}}
    history = [{"status": "reserved", "at": "2026-11-02T00:00:00+00:00"},
               {"status": "deferred", "reason": "quiet_hours", "at": "2026-11-02T00:00:01+00:00"},
               {"status": "sent", "at": "2026-11-02T08:00:00+00:00"},
               {"status": "delivered", "event": "delivered", "at": "2026-11-02T08:00:05+00:00"},
               {"status": "delivered", "event": "open", "at": "2026-11-02T09:00:00+00:00"},
               {"status": "delivered", "event": "click", "url": "https://acme.example/shoes", "at":
                "2026-11-02T09:01:00+00:00"}]  # fmt: skip
    with empty_engine.begin() as connection:
        connection.execute(
            text("INSERT INTO campaign_versions (campaign_id, version, content_hash, spec, active, deployed_at) "
                 "VALUES ('apology', 1, 'h1', :spec, true, '2026-11-01 00:00:00')"), {"spec": json.dumps(spec)}
        )  # fmt: skip
        connection.execute(
            text("INSERT INTO enrolments (campaign_id, campaign_version, contact_id, entry_key, workflow_id, holdout, "
                 "enrolled_at, listens_to) VALUES ('apology', 1, 'c-1', 'A1', 'journey/apology/c-1/A1', false, "
                 "'2026-11-02 00:00:00', '[]')")
        )  # fmt: skip
        connection.execute(
            text("INSERT INTO deliveries (idempotency_key, workflow_id, campaign_id, campaign_version, category, "
                 "step_id, contact_id, channel, status, status_history, created_at, updated_at) VALUES ('k', "
                 "'journey/apology/c-1/A1', 'apology', 1, 'care', 'sorry', 'c-1', 'email', 'delivered', :history, "
                 "'2026-11-02 00:00:00', '2026-11-02 00:00:00')"), {"history": json.dumps(history)}
        )  # fmt: skip
    upgrade(empty_engine)
    with make_sessionmaker(empty_engine)() as session:
        [entry] = session.scalars(select(Enrolment)).all()
        events = session.scalars(select(DeliveryEvent).order_by(DeliveryEvent.occurred_at)).all()
    assert entry.goal_by == entry.enrolled_at + timedelta(days=2, hours=12)
    assert {(e.step_id, e.channel) for e in events} == {("sorry", "email")}
    assert [(e.kind, e.reason, e.url) for e in events] == [
        ("deferred", "quiet_hours", None), ("delivered", None, None), ("opened", None, None),
        ("clicked", None, "https://acme.example/shoes")]  # fmt: skip
    assert events[0].occurred_at == datetime(2026, 11, 2, 0, 0, 1, tzinfo=UTC)
