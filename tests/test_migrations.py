"""The store's schema: created from nothing by Alembic, identical to the models, reversible."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from carecast.store.db import make_engine
from carecast.store.migrate import downgrade, upgrade
from carecast.store.models import Base

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
