"""Shared set-up for the Temporal benchmarks: a dev server, a store, contacts, a worker."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert
from sqlalchemy.engine import make_url
from temporalio.testing import WorkflowEnvironment

from carecast.channels.outbox import OutboxProvider
from carecast.config import Settings
from carecast.providers import build_provider
from carecast.store.db import make_engine, make_sessionmaker
from carecast.store.migrate import upgrade
from carecast.store.models import Contact, Preferences
from carecast.temporal import DATA_CONVERTER, register_search_attributes
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


def add_contacts(sessions, count: int, attributes: dict, prefix: str = "c") -> None:
    """`count` contacts with email consent, ids `c-0000000` onwards (another `prefix` for a second set)."""
    now = datetime.now(UTC)
    for start in range(0, count, 10_000):
        ids = [f"{prefix}-{n:07d}" for n in range(start, min(count, start + 10_000))]
        with sessions.begin() as session:
            session.execute(insert(Contact.__table__), [
                dict(id=i, email=f"{i}@example.com", timezone="UTC", lifecycle_stage="active",
                     attributes=attributes, created_at=now, updated_at=now) for i in ids
            ])  # fmt: skip
            session.execute(insert(Preferences.__table__), [
                dict(contact_id=i, email_consent=True, sms_consent=False, voice_consent=False, preferred_channels=[],
                     topics={}, send_windows=[], updated_at=now) for i in ids
            ])  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def fake_sendgrid():
    """`carecast fake-providers` in a process of its own: SendGrid on 127.0.0.1, checking every request."""
    port = free_port()
    process = subprocess.Popen(
        [str(BIN / "carecast"), "fake-providers", "--port", str(port), "--no-callbacks"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port, process, "the fake providers")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def worker_process(env: dict[str, str]):
    """`carecast worker` in a process of its own; its peak RSS is reported when it ends."""
    process = subprocess.Popen([str(BIN / "carecast"), "worker"], env=env, stdout=subprocess.DEVNULL)
    try:
        yield process
    finally:
        peak = Path(f"/proc/{process.pid}/status").read_text().split("VmHWM:")[1].split()[0]
        print(f"worker process      peak RSS {int(peak) / 1024:.0f} MB")
        process.terminate()
        process.wait(timeout=30)


def worker_environment(settings: Settings, url: str, temporal_address: str, fake_url: str | None) -> dict[str, str]:
    """What a `carecast worker` process of the benchmark's world is started with."""
    return {
        "PATH": os.environ.get("PATH", ""), "CARECAST_HOME": str(settings.home), "CARECAST_DATABASE_URL": url,
        "CARECAST_TEMPORAL_ADDRESS": temporal_address,
        "CARECAST_TASK_QUEUE": settings.task_queue, "CARECAST_CAMPAIGNS_DIR": str(settings.campaigns_dir),
        "CARECAST_TEMPLATES_DIR": str(settings.templates_dir), "CARECAST_SECRET_KEY": "bench-" + "s" * 32,
        "CARECAST_OUTBOX_DIR": str(settings.outbox_dir),
        "CARECAST_PROVIDER_TIMEOUT": str(settings.provider_timeout_seconds),
        **({"SENDGRID_API_KEY": "SG.fake-key", "SENDGRID_API_HOST": fake_url} if fake_url else {}),
    }  # fmt: skip


class WorkerPool:
    """`carecast worker --queues QUEUES` processes. `kill_one` ends the oldest with SIGKILL — no goodbye, as
    a crash or an OOM kill — and starts another in its place unless told not to."""

    def __init__(self, env: dict[str, str], count: int, queues: str = "journeys,broadcasts") -> None:
        self.env, self.count, self.queues = env, count, queues
        self.processes: list[subprocess.Popen] = []

    def __enter__(self) -> WorkerPool:
        self.processes = [self._spawn() for _ in range(self.count)]
        return self

    def _spawn(self) -> subprocess.Popen:
        return subprocess.Popen(
            [str(BIN / "carecast"), "worker", "--queues", self.queues],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def kill_one(self, replace: bool = True) -> int:
        victim = self.processes.pop(0)
        victim.kill()
        victim.wait()
        if replace:
            self.processes.append(self._spawn())
        return victim.pid

    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def __exit__(self, *exc) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_for_port(port: int, process: subprocess.Popen, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        if time.monotonic() > deadline or process.poll() is not None:
            error = process.stderr.read().decode() if process.stderr and process.poll() is not None else "too slow"
            raise RuntimeError(f"{what} did not start: {error}")
        time.sleep(0.1)


@contextmanager
def api_process(env: dict[str, str], port: int):
    """`carecast api` in a process of its own on 127.0.0.1:`port`, once it answers."""
    process = subprocess.Popen(
        [str(BIN / "carecast"), "api"],
        env={**env, "CARECAST_API_HOST": "127.0.0.1", "CARECAST_API_PORT": str(port)},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        wait_for_port(port, process, "carecast api")
        yield process
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextmanager
def store_world(database_url: str | None, campaigns: dict[str, str], templates: dict[str, str]):
    """A migrated store (SQLite in a temp folder, or a scratch database on `database_url`'s server)
    with campaigns and templates in that folder; yields (settings, engine, url)."""
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
    try:
        yield settings, engine, url
    finally:
        engine.dispose()
        drop()


@asynccontextmanager
async def bench_world(
    database_url: str | None,
    campaigns: dict[str, str],
    templates: dict[str, str],
    provider_kind: str = "sendgrid",
    workers: int = 1,
):
    """A dev server, a migrated store, campaigns and templates in a temp folder, and running workers.

    `provider_kind`: `sendgrid` (the fake SendGrid over HTTP on 127.0.0.1, in its own
    process) or `outbox` (an .eml file per message). `workers`: one in this process,
    the others `carecast worker` processes on the same task queue, as in production.
    """
    with store_world(database_url, campaigns, templates) as (settings, engine, url), ExitStack() as stack:
        env = await WorkflowEnvironment.start_local(
            data_converter=DATA_CONVERTER,
            dev_server_existing_path=str(BIN / "temporal"),
            dev_server_log_level="error",
            ui=False,
        )
        await register_search_attributes(env.client)
        fake_url = None
        if provider_kind == "sendgrid":
            fake_url = stack.enter_context(fake_sendgrid())
            settings = replace(settings, sendgrid_api_key="SG.fake-key", sendgrid_api_host=fake_url)
            provider = build_provider(settings)
        else:
            provider = OutboxProvider(settings.outbox_dir, echo=lambda line: None)
        worker_env = worker_environment(settings, url, env.client.service_client.config.target_host, fake_url)
        for _ in range(workers - 1):
            stack.enter_context(worker_process(worker_env))
        try:
            async with carecast_worker(env.client, settings, engine, provider) as worker, worker:
                yield env.client, settings, engine, make_sessionmaker(engine)
        finally:
            await env.shutdown()
