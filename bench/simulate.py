"""How long `carecast simulate` takes for three weeks of welcome_series, against the bare journey.

    .venv/bin/python -m bench.simulate [--repeats 3]

Three measurements, each on a time-skipping server of its own, repeated and interleaved:

1. baseline: the welcome_series journey alone, the way the tests run one: a fresh server, a
   worker, one signed_up event, and one skip of the server through the three weeks. What
   Temporal and the journey itself cost.
2. `simulate` of the same campaign alone (a folder with welcome_series.yaml and policy.yaml)
   over three weeks: what the scratch store, the driver and the timeline add.
3. `simulate` of every shipped campaign with lifecycle stages (campaigns/): what a marketer
   runs — three weekly back_in_stock runs and 504 hourly stage recomputes ride along.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from carecast.channels.outbox import OutboxProvider
from carecast.config import Settings
from carecast.contacts.schema import ContactInput
from carecast.contacts.writer import write_contacts
from carecast.intake.ingest import ingest_event
from carecast.intake.record import IncomingEvent
from carecast.simulation.run import Scenario, simulate, test_server_path
from carecast.simulation.scenario import Profile, ScheduledEvent
from carecast.simulation.scratch import deploy_files
from carecast.store.db import make_engine, make_sessionmaker
from carecast.store.migrate import upgrade
from carecast.temporal import DATA_CONVERTER, register_search_attributes
from carecast.worker import carecast_worker
from workflows.journey.workflow import JourneyWorkflow

ROOT = Path(__file__).resolve().parent.parent
WEEKS = 3
ADA = {"id": "ada", "email": "ada@example.com", "timezone": "Europe/Paris",
       "attributes": {"first_name": "Ada", "interests": "running shoes"}}  # fmt: skip


def settings_in(folder: Path) -> Settings:
    env = {"CARECAST_HOME": str(folder / "home"), "CARECAST_SECRET_KEY": "bench-" + "k" * 32, "PATH": ""}
    return Settings.from_env(env=env, cwd=ROOT)


def only_welcome_series(folder: Path) -> Path:
    campaigns = folder / "campaigns"
    campaigns.mkdir()
    for name in ("welcome_series.yaml", "policy.yaml"):
        shutil.copy(ROOT / "campaigns" / name, campaigns / name)
    return campaigns


async def bare_journey(folder: Path) -> float:
    """The journey alone, run to its end on a fresh time-skipping server: seconds."""
    started = time.perf_counter()
    campaigns = only_welcome_series(folder)
    settings = replace(settings_in(folder), campaigns_dir=campaigns, database_url=f"sqlite:///{folder / 'store.db'}",
                       task_queue=f"bench-{uuid.uuid4().hex[:6]}")  # fmt: skip
    engine = make_engine(settings.database_url)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        deploy_files(session, campaigns, settings.templates_dir)
        write_contacts(session, [ContactInput.model_validate(ADA)], source="bench", address_key=settings.address_key())
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=test_server_path(), data_converter=DATA_CONVERTER
    )
    try:
        await register_search_attributes(env.client)
        provider = OutboxProvider(settings.outbox_dir, echo=lambda line: None)
        async with carecast_worker(env.client, settings, engine, provider) as worker, worker:
            event = IncomingEvent("e-1", "ada", "signed_up", datetime.now(UTC), {})
            [workflow_id] = (await ingest_event(env.client, sessions, settings.task_queue, event)).started
            await env.sleep(timedelta(weeks=WEEKS))  # one skip through the three weeks
            result = await env.client.get_workflow_handle_for(JourneyWorkflow.run, workflow_id).result()
            assert [(s.step_id, s.status) for s in result.history if s.status == "sent"] == [
                ("tips", "sent"), ("nudge_profile", "sent")]  # fmt: skip
    finally:
        await env.shutdown()
        engine.dispose()
    return time.perf_counter() - started


async def simulated(folder: Path, campaigns: Path) -> float:
    started = time.perf_counter()
    scenario = Scenario(Profile.model_validate(ADA), [ScheduledEvent(event="signed_up")], timedelta(weeks=WEEKS),
                        campaigns)  # fmt: skip
    timeline = await simulate(settings_in(folder), scenario, None)
    assert [e.step for e in timeline.messages() if e.campaign == "welcome_series"] == ["tips", "nudge_profile"]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    runs: dict[str, list[float]] = {"baseline": [], "alone": [], "everything": []}
    for _ in range(args.repeats):  # interleaved, so a slow moment of the machine touches all three
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b, tempfile.TemporaryDirectory() as c:
            runs["baseline"].append(asyncio.run(bare_journey(Path(a))))
            runs["alone"].append(asyncio.run(simulated(Path(b), only_welcome_series(Path(b)))))
            runs["everything"].append(asyncio.run(simulated(Path(c), ROOT / "campaigns")))
    base = statistics.median(runs["baseline"])
    rows = [
        ("baseline: the welcome_series journey alone, run to its end", "baseline"),
        (f"carecast simulate, welcome_series alone, {WEEKS} weeks", "alone"),
        (f"carecast simulate, every shipped campaign and lifecycle stages, {WEEKS} weeks", "everything"),
    ]
    print(f"| what (median of {args.repeats}, each on a fresh time-skipping server) | seconds | × baseline |")
    print("|---|---:|---:|")
    for label, key in rows:
        median = statistics.median(runs[key])
        print(f"| {label} | {median:.2f} | {median / base:.1f} |")


if __name__ == "__main__":
    main()
