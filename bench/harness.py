"""Shared set-up for the Temporal benchmarks: a dev server, a store, contacts, a worker."""

from __future__ import annotations

import resource
import sys
import tempfile
import uuid
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert
from sqlalchemy.engine import make_url
from temporalio.testing import WorkflowEnvironment

from carecast.channels.outbox import OutboxProvider
from carecast.config import Settings
from carecast.store.db import make_engine, make_sessionmaker
from carecast.store.migrate import upgrade
from carecast.store.models import Contact, Preferences
from carecast.temporal import register_search_attributes
from carecast.worker import carecast_worker

BIN = Path(sys.executable).parent


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def scratch_postgres(server_url: str):
    import psycopg

    name = f"carecast_bench_{uuid.uuid4().hex[:8]}"
    admin = make_url(server_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')

    def drop():
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE "{name}" WITH (FORCE)')

    return make_url(admin).set(database=name).render_as_string(hide_password=False), drop


def add_contacts(sessions, count: int, attributes: dict) -> None:
    now = datetime.now(UTC)
    for start in range(0, count, 10_000):
        ids = [f"c-{n:07d}" for n in range(start, min(count, start + 10_000))]
        with sessions.begin() as session:
            session.execute(insert(Contact.__table__), [
                dict(id=i, email=f"{i}@example.com", timezone="UTC", lifecycle_stage="active",
                     attributes=attributes, created_at=now, updated_at=now) for i in ids
            ])  # fmt: skip
            session.execute(insert(Preferences.__table__), [
                dict(contact_id=i, email_consent=True, sms_consent=False, voice_consent=False, preferred_channels=[],
                     topics={}, send_windows=[], updated_at=now) for i in ids
            ])  # fmt: skip


@asynccontextmanager
async def bench_world(database_url: str | None, campaigns: dict[str, str], templates: dict[str, str]):
    """A dev server, a migrated store, campaigns and templates in a temp folder, and a running worker."""
    folder = Path(tempfile.mkdtemp(prefix="carecast-bench-"))
    (folder / "campaigns").mkdir()
    (folder / "templates").mkdir()
    for name, text in campaigns.items():
        (folder / "campaigns" / name).write_text(text)
    for name, text in templates.items():
        (folder / "templates" / name).write_text(text)
    url, drop = scratch_postgres(database_url) if database_url else (f"sqlite:///{folder}/bench.db", lambda: None)
    engine = make_engine(url)
    upgrade(engine)
    settings = replace(
        Settings.from_env(env={"CARECAST_HOME": str(folder / "home")}, cwd=folder),
        task_queue=f"bench-{uuid.uuid4().hex[:6]}",
        secret_key="bench",
    )
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(BIN / "temporal"), dev_server_log_level="error", ui=False
    )
    await register_search_attributes(env.client)
    provider = OutboxProvider(settings.outbox_dir, echo=lambda line: None)
    try:
        async with carecast_worker(env.client, settings, engine, provider) as worker, worker:
            yield env.client, settings, engine, make_sessionmaker(engine)
    finally:
        await env.shutdown()
        engine.dispose()
        drop()
