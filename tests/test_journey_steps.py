"""Multi-day journeys on the time-skipping server: waits, wait_for, branches, updates, exits, goal, holdout."""

import uuid
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from activities.journey_steps import next_local_time
from carecast.channels.outbox import OutboxProvider
from carecast.intake.ingest import ingest_event
from carecast.intake.record import IncomingEvent, in_holdout
from carecast.store.models import Contact, Delivery, Enrolment, Event
from carecast.worker import carecast_worker
from tests import factories
from tests.factories import add_contact
from tests.skipping import skip_until_closed, terminate_running
from workflows.journey.workflow import JourneyWorkflow

pytestmark = pytest.mark.store

SERIES = """\
id: series
name: Series
category: care
trigger: {event: signed_up}
goal: {event: order_placed, within: 14d}
exit_on: [account_closed]
steps:
  - id: hello
    send: {template: welcome, channels: [email]}
  - id: await_profile
    wait_for: {event: profile_completed, timeout: 3d, on_timeout: nudge}
  - id: pick
    branch:
      cases:
        - when: {attributes.interests: {exists: true}}
          goto: picks
      otherwise: done
  - id: picks
    update: {attributes: {got_picks: true}, lifecycle_stage: active}
  - id: done
    exit: true
  - id: nudge
    wait: 2d
  - id: nudge_mail
    send: {template: welcome, channels: [email]}
"""


@pytest.fixture
async def journeys(time_skipping_env, settings, engine, sessions, tmp_path):
    """Deploys a campaign text and returns a runner: event in, skipped to the end, outcome out."""
    campaigns = tmp_path / "campaigns"
    campaigns.mkdir()
    task_queue = f"steps-{uuid.uuid4().hex[:8]}"
    settings = replace(settings, task_queue=task_queue, campaigns_dir=campaigns)
    client = time_skipping_env.client

    def deploy(text, campaign_id="series"):
        (campaigns / f"{campaign_id}.yaml").write_text(text)
        with sessions.begin() as session:
            factories.deploy(session, settings.templates_dir, campaigns / f"{campaign_id}.yaml")

    async def run(event_name="signed_up", contact_id="c-1", during=None):
        event = IncomingEvent(f"e-{uuid.uuid4().hex[:8]}", contact_id, event_name, datetime.now(UTC))
        provider = OutboxProvider(settings.outbox_dir, echo=lambda line: None)
        async with carecast_worker(client, settings, engine, provider) as worker, worker:
            result = await ingest_event(client, sessions, task_queue, event)
            [workflow_id] = result.started
            started.append(workflow_id)
            if during is not None:
                await during(workflow_id)
            await skip_until_closed(time_skipping_env, workflow_id)
            return await client.get_workflow_handle_for(JourneyWorkflow.run, workflow_id).result()

    async def signal(name, contact_id="c-1"):
        event = IncomingEvent(f"e-{uuid.uuid4().hex[:8]}", contact_id, name, datetime.now(UTC))
        result = await ingest_event(client, sessions, task_queue, event)
        started.extend(result.started)
        return result

    started: list[str] = []
    run.deploy, run.signal = deploy, signal
    yield run
    await terminate_running(client, started)


def statuses(outcome):
    return [(step.step_id, step.status) for step in outcome.history]


async def test_without_the_awaited_event_the_timeout_path_runs_days_later(journeys, sessions):
    journeys.deploy(SERIES)
    with sessions.begin() as session:
        add_contact(session)
    outcome = await journeys()
    assert statuses(outcome) == [
        ("hello", "sent"), ("await_profile", "timed_out"), ("nudge", "waited"), ("nudge_mail", "sent"),
    ]  # fmt: skip
    assert outcome.ended_by == "completed"


async def test_the_awaited_event_continues_and_the_branch_picks_by_attribute(journeys, sessions, time_skipping_env):
    journeys.deploy(SERIES)
    with sessions.begin() as session:
        add_contact(session, attributes={"first_name": "Ada", "interests": "running"})

    async def complete_profile(workflow_id):
        await time_skipping_env.sleep(timedelta(days=1))
        assert (await journeys.signal("profile_completed")).signalled == [workflow_id]

    outcome = await journeys(during=complete_profile)
    assert statuses(outcome) == [
        ("hello", "sent"), ("await_profile", "event_received"), ("pick", "branched"), ("picks", "updated"),
        ("done", "exited"),
    ]  # fmt: skip
    with sessions() as session:
        contact = session.get(Contact, "c-1")
        announced = session.execute(select(Event.name, Event.data).where(Event.name.like("stage_%"))).all()
    assert contact.attributes["got_picks"] is True and contact.lifecycle_stage == "active"
    assert announced == [("stage_entered", {"stage": "active"})]  # the update step announced the move at once


async def test_the_goal_ends_the_journey_while_it_waits(journeys, sessions, time_skipping_env):
    journeys.deploy(SERIES)
    with sessions.begin() as session:
        add_contact(session)

    async def order(workflow_id):
        await time_skipping_env.sleep(timedelta(days=1))
        await journeys.signal("order_placed")

    outcome = await journeys(during=order)
    assert statuses(outcome) == [("hello", "sent")]
    assert outcome.ended_by == "goal"


async def test_an_exit_event_ends_it_too(journeys, sessions, time_skipping_env):
    journeys.deploy(SERIES)
    with sessions.begin() as session:
        add_contact(session)

    async def close(workflow_id):
        await time_skipping_env.sleep(timedelta(days=4))
        await journeys.signal("account_closed")

    outcome = await journeys(during=close)
    assert outcome.ended_by == "exit:account_closed"
    assert ("nudge_mail", "sent") not in statuses(outcome)


async def test_a_holdout_contact_runs_the_journey_but_is_sent_nothing(journeys, sessions):
    contact_id = next(f"c-{n}" for n in range(1000) if in_holdout("held", f"c-{n}", 50))
    journeys.deploy(SERIES.replace("id: series", "id: held").replace("steps:", "holdout: 50\nsteps:"), "held")
    with sessions.begin() as session:
        add_contact(session, contact_id)
    outcome = await journeys(contact_id=contact_id)
    assert ("hello", "holdout") in statuses(outcome)
    with sessions() as session:
        assert {d.status for d in session.scalars(select(Delivery))} == {"holdout"}
        assert session.scalar(select(Enrolment.holdout)) is True


async def test_entry_filter_and_reentry_never(journeys, sessions):
    journeys.deploy(
        "id: series\nname: Once\ncategory: care\ntrigger: {event: signed_up}\n"
        "entry: {when: {lifecycle_stage: {eq: new}}, reentry: never}\n"
        "steps:\n  - {id: hello, send: {template: welcome, channels: [email]}}\n"
    )
    with sessions.begin() as session:
        add_contact(session, "c-1", lifecycle_stage="new")
        add_contact(session, "c-2", lifecycle_stage="loyal")
    first = await journeys(contact_id="c-1")
    again = await journeys.signal("signed_up", "c-1")
    other = await journeys.signal("signed_up", "c-2")
    assert statuses(first) == [("hello", "sent")]
    assert (again.started, again.not_entered) == ([], {"series": "already_enrolled"})
    assert (other.started, other.not_entered) == ([], {"series": "entry_filter"})


def test_wait_until_finds_the_next_allowed_local_time_across_dst():
    paris = ZoneInfo("Europe/Paris")
    friday_night = datetime(2026, 10, 23, 22, 0, tzinfo=UTC)  # Saturday 00:00 in Paris
    at = next_local_time(friday_night, paris, "10:00", ["tue", "wed", "thu"])
    assert at.astimezone(paris).replace(tzinfo=None) == datetime(2026, 10, 27, 10, 0)  # after the 25 October change
    assert at == datetime(2026, 10, 27, 9, 0, tzinfo=UTC)
    assert next_local_time(datetime(2026, 10, 27, 9, 0, tzinfo=UTC), paris, "10:00", []).time() == time(9, 0)
