"""Lifecycle stages: recomputed set-wise, moves announced, stage-triggered journeys start and end."""

import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.testing import ActivityEnvironment

from activities import lifecycle as lifecycle_activities
from activities.lifecycle import LifecycleActivities, target_stage
from carecast.campaign.documents import InvalidFile
from carecast.campaign.lifecycle import load_lifecycle
from carecast.channels.outbox import OutboxProvider
from carecast.intake import record
from carecast.intake.relay import Relay
from carecast.store.models import Contact, Enrolment, Event
from carecast.worker import carecast_worker
from tests.factories import add_contact, deploy
from tests.skipping import skip_until_closed, until_started
from workflows.journey.workflow import JourneyWorkflow
from workflows.lifecycle import LifecycleWorkflow
from workflows.lifecycle_contract import HEARTBEAT_TIMEOUT, LifecycleInput, RecomputePage

pytestmark = pytest.mark.store

SCHEDULED, STARTED = EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
LIFECYCLE = """\
stages:
  - {name: lapsed, when: {attributes.last_order_at: {older_than: 90d}}}
  - {name: active, when: {attributes.last_order_at: {within: 90d}}}
  - {name: lead}
"""
WIN_BACK = """\
id: come_back
name: Come back
category: care
trigger: {stage: lapsed}
steps:
  - {id: note, send: {template: welcome, channels: [email]}}
  - {id: later, wait: 30d}
  - {id: again, send: {template: welcome, channels: [email]}}
"""


def iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


async def win_back_folder(env, settings, sessions, tmp_path):
    """The lifecycle and the win-back campaign, deployed from a folder of the test's own: settings, queue, now."""
    campaigns = tmp_path / "campaigns"
    campaigns.mkdir()
    (campaigns / "lifecycle.yaml").write_text(LIFECYCLE)
    (campaigns / "come_back.yaml").write_text(WIN_BACK)
    task_queue = f"lifecycle-{uuid.uuid4().hex[:6]}"
    settings = replace(settings, campaigns_dir=campaigns, task_queue=task_queue)
    with sessions.begin() as session:
        deploy(session, settings.templates_dir, campaigns / "come_back.yaml")
    return settings, task_queue, await env.get_current_time()


async def test_moving_into_a_stage_starts_its_journey_and_leaving_it_ends_it(
    time_skipping_env, settings, engine, sessions, tmp_path
):
    settings, task_queue, now = await win_back_folder(time_skipping_env, settings, sessions, tmp_path)
    client = time_skipping_env.client
    with sessions.begin() as session:
        add_contact(session, "c-old", attributes={"first_name": "Ola", "last_order_at": iso(now - timedelta(days=120))})
        add_contact(session, "c-new", attributes={"first_name": "Nia", "last_order_at": iso(now - timedelta(days=3))})
        add_contact(session, "c-none", attributes={"first_name": "Nor"})

    async def recompute():
        workflow_id = f"lifecycle/{uuid.uuid4().hex[:6]}"
        await client.start_workflow(
            LifecycleWorkflow.run, LifecycleInput(page_size=2), id=workflow_id, task_queue=task_queue
        )
        await skip_until_closed(time_skipping_env, workflow_id, step=timedelta(minutes=1))
        return await client.get_workflow_handle_for(LifecycleWorkflow.run, workflow_id).result()

    provider = OutboxProvider(settings.outbox_dir, echo=lambda line: None)
    async with carecast_worker(client, settings, engine, provider) as worker, worker:
        first = await recompute()
        with sessions() as session:
            stages = dict(session.execute(select(Contact.id, Contact.lifecycle_stage)).all())
            [journey_id] = session.scalars(select(Enrolment.workflow_id)).all()
        assert stages == {"c-old": "lapsed", "c-new": "active", "c-none": "lead"}
        assert (first.seen, first.moved) == (3, 3)

        again = await recompute()
        assert again.moved == 0  # nothing changed, nothing announced twice

        with sessions.begin() as session:
            session.get(Contact, "c-old").attributes = {"first_name": "Ola", "last_order_at": iso(now)}
        await recompute()
        await skip_until_closed(time_skipping_env, journey_id)
        outcome = await client.get_workflow_handle_for(JourneyWorkflow.run, journey_id).result()

    assert journey_id.startswith("journey/come_back/c-old/stage_entered")
    assert outcome.ended_by == "stage_left"
    assert [(s.step_id, s.status) for s in outcome.history] == [("note", "sent")]
    with sessions() as session:
        names = sorted(session.scalars(select(Event.name).where(Event.contact_id == "c-old")))
    assert names == ["stage_entered", "stage_entered", "stage_left"]  # lapsed in, lapsed out, active in


def test_the_first_matching_stage_wins_in_sql(sessions, tmp_path):
    (tmp_path / "lifecycle.yaml").write_text(LIFECYCLE)
    lifecycle = load_lifecycle(tmp_path)

    now = datetime(2026, 11, 25, tzinfo=UTC)
    with sessions.begin() as session:
        session.add(Contact(id="a", attributes={"last_order_at": "2026-01-01T00:00:00Z"}))
        session.add(Contact(id="b", attributes={"last_order_at": "2026-11-20T00:00:00Z"}))
        session.add(Contact(id="c", attributes={}))
    with sessions() as session:
        rows = dict(session.execute(select(Contact.id, target_stage(lifecycle, now))).all())
    assert rows == {"a": "lapsed", "b": "active", "c": "lead"}


def test_a_stage_without_a_rule_must_come_last(tmp_path):
    (tmp_path / "lifecycle.yaml").write_text("stages:\n  - {name: lead}\n  - {name: new, when: {locale: {eq: x}}}\n")
    with pytest.raises(InvalidFile, match="stage 'lead' has no rule, so the stages after it could never match"):
        load_lifecycle(tmp_path)


async def test_a_retried_recompute_still_announces_the_moves_its_first_attempt_made(
    time_skipping_env, settings, engine, sessions, tmp_path, monkeypatch
):
    settings, task_queue, now = await win_back_folder(time_skipping_env, settings, sessions, tmp_path)
    client = time_skipping_env.client
    with sessions.begin() as session:
        add_contact(session, "c-old", attributes={"first_name": "Ola", "last_order_at": iso(now - timedelta(days=120))})
    monkeypatch.setattr(record, "FAST_PATH_LEASE", timedelta(0))  # the worker's relay loop may take rows at once
    send, failed = Relay.send, []

    async def crash_after_the_commit_once(relay, ids):
        if ids and not failed and activity.in_activity():  # the page's own delivery, not the relay loop's
            failed.append(ids)
            raise RuntimeError("the worker died after the stages were written")  # the activity fails, is retried
        return await send(relay, ids)

    monkeypatch.setattr(Relay, "send", crash_after_the_commit_once)
    provider = OutboxProvider(settings.outbox_dir, echo=lambda line: None)
    async with carecast_worker(client, settings, engine, provider) as worker, worker:
        workflow_id = f"lifecycle/{uuid.uuid4().hex[:6]}"
        await client.start_workflow(LifecycleWorkflow.run, LifecycleInput(), id=workflow_id, task_queue=task_queue)
        await skip_until_closed(time_skipping_env, workflow_id, step=timedelta(minutes=1))
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        [scheduled] = [e.activity_task_scheduled_event_attributes for e in history.events if e.event_type == SCHEDULED]
        [started] = [e.activity_task_started_event_attributes for e in history.events if e.event_type == STARTED]
        with sessions() as session:
            [journey_id] = session.scalars(select(Enrolment.workflow_id)).all()
        await until_started(client, journey_id)  # announced by the relay, though no attempt of the page did
        await skip_until_closed(time_skipping_env, journey_id, step=timedelta(days=1))
        outcome = await client.get_workflow_handle_for(JourneyWorkflow.run, journey_id).result()

    assert failed and started.attempt == 2  # the first attempt wrote the move and its rows, then died
    assert scheduled.heartbeat_timeout.ToTimedelta() == HEARTBEAT_TIMEOUT  # a dead worker's page is noticed
    steps = [(s.step_id, s.status) for s in outcome.history]
    assert steps == [("note", "sent"), ("later", "waited"), ("again", "sent")]


async def test_a_page_heartbeats_while_it_works(sessions, tmp_path, monkeypatch):
    (tmp_path / "lifecycle.yaml").write_text(LIFECYCLE)
    recompute = LifecycleActivities(sessions, load_lifecycle(tmp_path), client=lambda: None, task_queue="unused")
    monkeypatch.setattr(lifecycle_activities, "HEARTBEAT_EVERY", timedelta(seconds=0.05))

    def slow_page(page):
        time.sleep(0.5)
        return [], 0, 0, None

    monkeypatch.setattr(recompute, "move_page", slow_page)
    beats = []
    environment = ActivityEnvironment()
    environment.on_heartbeat = lambda *details: beats.append(details)
    await environment.run(recompute.recompute_stages, RecomputePage(datetime.now(UTC), None, 10))
    assert len(beats) >= 5  # all through the page, not once after it
