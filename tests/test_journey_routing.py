"""Journeys keep their word: each event steers exactly its journeys, on their own version, and is never lost.

On the time-skipping server with a real worker, its relay, and the outbox provider.
"""

import asyncio
import email
import email.policy
import os
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from temporalio.client import WorkflowExecutionStatus

from carecast.channels.outbox import OutboxProvider
from carecast.deploy import deploy_versions
from carecast.intake import record, relay, settlement
from carecast.intake.ingest import ingest_event
from carecast.intake.record import IncomingEvent
from carecast.intake.relay import Relay
from carecast.policy.model import EmailIdentity
from carecast.store.house_rules import deploy_house_rules
from carecast.store.models import Delivery, Enrolment
from carecast.worker import carecast_worker
from tests.factories import ROOT, add_contact, deploy
from tests.skipping import record_history, skip_until_closed, terminate_running, until_started
from workflows.journey.contract import Control
from workflows.journey.workflow import JourneyWorkflow

pytestmark = pytest.mark.store

TEMPLATES = {
    "note.email.subject.j2": "Note {{ event.order_id | default('') }}",
    "note.email.txt.j2": "Hello {{ contact.id }}.",
}


class World:
    """A campaigns folder of the test's own, a worker on its own queue, and ways to drive journeys."""

    def __init__(self, env, settings, sessions):
        self.env, self.settings, self.sessions = env, settings, sessions
        self.campaigns, self.templates = settings.campaigns_dir, settings.templates_dir
        self.started: list[str] = []
        # The test server lives for the whole session: a contact id of its own keeps workflow ids apart.
        self.contact = f"c-{uuid.uuid4().hex[:8]}"

    def deploy(self, text: str, campaign_id: str | None = None):
        campaign_id = campaign_id or text.split("id: ", 1)[1].split("\n", 1)[0]
        path = self.campaigns / f"{campaign_id}.yaml"
        path.write_text(text)
        with self.sessions.begin() as session:
            return deploy(session, self.templates, path)[0]

    async def send(self, name, contact_id=None, history_limit=None, occurred_at=None, **data):
        at = occurred_at or datetime.now(UTC)
        event = IncomingEvent(f"e-{uuid.uuid4().hex[:10]}", contact_id or self.contact, name, at, data)
        extra = {"history_limit": history_limit} if history_limit else {}
        result = await ingest_event(self.env.client, self.sessions, self.settings.task_queue, event, **extra)
        self.started += result.started
        return result

    async def finish(self, workflow_id: str, step=timedelta(hours=1)):
        await skip_until_closed(self.env, workflow_id, step=step)
        return await self.env.client.get_workflow_handle_for(JourneyWorkflow.run, workflow_id).result()

    def sent(self, campaign_id: str) -> list[tuple[str, str]]:
        with self.sessions() as session:
            rows = session.execute(
                select(Delivery.step_id, Delivery.idempotency_key)
                .where(Delivery.campaign_id == campaign_id, Delivery.status == "sent")
                .order_by(Delivery.id)
            )
            return [(step, key.rsplit("/", 1)[-1]) for step, key in rows]


def new_world(env, settings, sessions, tmp_path) -> World:
    campaigns, templates = tmp_path / "campaigns", tmp_path / "templates"
    campaigns.mkdir()
    templates.mkdir()
    for name, text in TEMPLATES.items():
        (templates / name).write_text(text)
    settings = replace(
        settings, task_queue=f"routing-{uuid.uuid4().hex[:8]}", campaigns_dir=campaigns, templates_dir=templates
    )
    world = World(env, settings, sessions)
    with sessions.begin() as session:
        add_contact(session, world.contact)
    return world


@pytest.fixture
async def world(time_skipping_env, settings, engine, sessions, tmp_path):
    world = new_world(time_skipping_env, settings, sessions, tmp_path)
    provider = OutboxProvider(world.settings.outbox_dir, echo=lambda line: None)
    async with carecast_worker(time_skipping_env.client, world.settings, engine, provider) as worker, worker:
        yield world
    await terminate_running(time_skipping_env.client, world.started)


async def test_a_journey_that_ended_is_marked_ended_by_the_time_its_worker_has_stopped(
    time_skipping_env, settings, engine, sessions, tmp_path, monkeypatch
):
    monkeypatch.setattr(settlement, "FLUSH_AFTER_SECONDS", 3600)  # no settlement but the one as the worker stops
    monkeypatch.setattr(relay, "RELAY_EVERY_SECONDS", 3600)
    world = new_world(time_skipping_env, settings, sessions, tmp_path)
    world.deploy(LATER)
    provider = OutboxProvider(world.settings.outbox_dir, echo=lambda line: None)
    async with carecast_worker(time_skipping_env.client, world.settings, engine, provider) as worker, worker:
        [journey] = (await world.send("signed_up")).started
        assert (await world.finish(journey)).ended_by == "completed"
    with sessions() as session:
        ended = session.execute(select(Enrolment.ended_at, Enrolment.ended_by).where(Enrolment.workflow_id == journey))
        ended_at, ended_by = ended.one()
    assert ended_at is not None and ended_by == "completed"  # how, for reports


APOLOGY = """\
id: apology
name: Apology
category: care
trigger: {event: delivery_delayed}
entry: {key: order_id, reentry: always}
exit_on: [order_delivered]
steps:
  - id: sorry
    send: {template: note, channels: [email]}
  - id: give_it_time
    wait: 2d
  - id: follow_up
    send: {template: note, channels: [email]}
"""


async def test_an_exit_event_ends_only_the_journey_of_its_entry_key(world):
    world.deploy(APOLOGY)
    [order_a] = (await world.send("delivery_delayed", order_id="A-1")).started
    [order_b] = (await world.send("delivery_delayed", order_id="B-2")).started
    delivered = await world.send("order_delivered", order_id="A-1")
    assert delivered.signalled == [order_a]
    assert (await world.finish(order_a)).ended_by == "exit:order_delivered"
    outcome = await world.finish(order_b)
    assert outcome.ended_by == "completed"
    assert [s.step_id for s in outcome.history if s.status == "sent"] == ["sorry", "follow_up"]


async def test_an_exit_event_without_the_key_reaches_every_journey_of_the_contact(world):
    world.deploy(APOLOGY)
    orders = [(await world.send("delivery_delayed", order_id=o)).started[0] for o in ("A-1", "B-2")]
    assert sorted((await world.send("order_delivered")).signalled) == sorted(orders)
    assert [(await world.finish(w)).ended_by for w in orders] == ["exit:order_delivered"] * 2


FOLLOW_UP_LOOP = """\
id: chase
name: Chase
category: care
trigger: {event: delivery_delayed}
entry: {key: order_id, reentry: always}
exit_on: [order_delivered]
steps:
  - id: sorry
    send: {template: note, channels: [email]}
  - id: give_it_time
    wait: 2d
    max_visits: 5
  - id: follow_up
    send: {template: note, channels: [email]}
  - id: again
    goto: give_it_time
"""


async def test_a_follow_up_loop_sends_once_per_visit_and_stops_on_its_exit_event(world):
    world.deploy(FOLLOW_UP_LOOP)
    [journey] = (await world.send("delivery_delayed", order_id="A-1")).started
    await world.env.sleep(timedelta(days=5))  # two follow-ups, on days 2 and 4
    assert (await world.send("order_delivered", order_id="A-1")).signalled == [journey]
    outcome = await world.finish(journey)
    assert outcome.ended_by == "exit:order_delivered"
    assert world.sent("chase") == [("sorry", "0"), ("follow_up", "0"), ("follow_up", "1")]


async def test_a_loop_ends_when_its_bound_is_spent(world):
    world.deploy(FOLLOW_UP_LOOP)
    [journey] = (await world.send("delivery_delayed", order_id="A-1")).started
    outcome = await world.finish(journey)
    assert outcome.ended_by == "visits_spent"
    assert [s for s, _ in world.sent("chase")] == ["sorry"] + ["follow_up"] * 5
    assert outcome.history[-1].step_id == "give_it_time" and outcome.history[-1].status == "spent"


async def test_an_exit_event_after_the_journey_ended_does_not_start_it_again(world):
    world.deploy(APOLOGY)
    [journey] = (await world.send("delivery_delayed", order_id="A-1")).started
    assert (await world.finish(journey)).ended_by == "completed"
    handle = world.env.client.get_workflow_handle(journey)
    finished = await handle.describe()
    late = await world.send("order_delivered", order_id="A-1")
    assert late.started == [] and late.signalled == []
    again = await handle.describe()
    assert (again.run_id, again.status) == (finished.run_id, WorkflowExecutionStatus.COMPLETED)
    with world.sessions() as session:
        assert session.scalar(select(Enrolment.ended_at).where(Enrolment.workflow_id == journey)) is not None
    assert len(world.sent("apology")) == 2


async def test_an_exit_event_racing_its_trigger_is_never_lost(world):
    world.deploy(APOLOGY)
    now = datetime.now(UTC)
    journeys = []
    for n in range(20):  # trigger and exit handed in at once: either may reach the store first
        data = {"order_id": f"R-{n}"}
        trigger = IncomingEvent(f"t-{uuid.uuid4().hex[:8]}", world.contact, "delivery_delayed", now, data)
        exit_ = IncomingEvent(f"x-{uuid.uuid4().hex[:8]}", world.contact, "order_delivered", now, data)
        args = (world.env.client, world.sessions, world.settings.task_queue)
        started, _ = await asyncio.gather(ingest_event(*args, trigger), ingest_event(*args, exit_))
        journeys += started.started
    world.started += journeys
    assert len(journeys) == 20
    for journey in journeys:
        assert (await world.finish(journey)).ended_by == "exit:order_delivered"


async def test_an_exit_event_that_reaches_the_store_before_its_trigger_still_ends_the_journey(world):
    world.deploy(APOLOGY)
    now = datetime.now(UTC)  # the race above, its exit-first order made certain
    args = (world.env.client, world.sessions, world.settings.task_queue)
    data = {"order_id": "R-first"}
    await ingest_event(*args, IncomingEvent(f"x-{uuid.uuid4().hex[:8]}", world.contact, "order_delivered", now, data))
    trigger = IncomingEvent(f"t-{uuid.uuid4().hex[:8]}", world.contact, "delivery_delayed", now, data)
    [journey] = (await ingest_event(*args, trigger)).started
    world.started.append(journey)
    outcome = await world.finish(journey)
    assert outcome.ended_by == "exit:order_delivered"
    assert world.sent("apology") == []  # it ended before its first message


async def test_a_journey_started_by_any_of_its_rows_knows_the_exit_that_came_first(world):
    world.deploy(APOLOGY)
    now, data = datetime.now(UTC), {"order_id": "R-any"}
    exit_ = IncomingEvent(f"x-{uuid.uuid4().hex[:8]}", world.contact, "order_delivered", now, data)
    trigger = IncomingEvent(f"t-{uuid.uuid4().hex[:8]}", world.contact, "delivery_delayed", now, data)
    with world.sessions.begin() as session:
        record.record_event(session, exit_)
        recorded = record.record_event(session, trigger)
    [journey] = world.started[:] = recorded.enrolled
    [trigger_row] = [row.id for row in recorded.outgoing if row.signal_key == trigger.event_id]
    # As a relay that claimed the trigger's row alone (another worker took the exit's): it starts the journey.
    await Relay(world.env.client, world.sessions, world.settings.task_queue).send([trigger_row])
    assert (await world.finish(journey)).ended_by == "exit:order_delivered"
    assert world.sent("apology") == []


GOAL = """\
id: nurture
name: Nurture
category: care
trigger: {event: signed_up}
goal: {event: order_placed, within: 1d}
exit_on: [account_closed]
steps:
  - id: hello
    send: {template: note, channels: [email]}
  - id: pause
    wait: 3d
  - id: again
    send: {template: note, channels: [email]}
"""


async def test_a_journey_keeps_hearing_the_exit_events_of_its_own_version(world):
    world.deploy(GOAL)
    [journey] = (await world.send("signed_up")).started
    world.deploy(GOAL.replace("exit_on: [account_closed]\n", ""))  # version 2 no longer exits on it
    assert (await world.send("account_closed")).signalled == [journey]
    assert (await world.finish(journey)).ended_by == "exit:account_closed"


async def test_a_goal_that_happened_inside_its_window_converts_even_if_heard_after_it(world):
    world.deploy(GOAL)
    [journey] = (await world.send("signed_up")).started
    await world.env.sleep(timedelta(days=2))  # heard two days on (an outage, a backlog) ...
    assert (await world.send("order_placed", occurred_at=datetime.now(UTC))).signalled == [journey]
    assert (await world.finish(journey)).ended_by == "goal"  # ... but it happened within the day


async def test_a_journey_of_a_campaign_removed_from_the_folder_still_converts_on_its_goal(world):
    world.deploy(GOAL)
    [journey] = (await world.send("signed_up")).started
    with world.sessions.begin() as session:  # the folder no longer has it: `carecast deploy` deactivates it
        *_, removed = deploy_versions(session, [], world.templates, EmailIdentity())
    assert removed == ["nurture"]
    assert (await world.send("order_placed")).signalled == [journey]
    assert (await world.finish(journey)).ended_by == "goal"


async def test_a_goal_event_after_its_window_is_not_a_conversion(world):
    world.deploy(GOAL)
    [journey] = (await world.send("signed_up")).started
    await world.env.sleep(timedelta(days=2))
    late = datetime.now(UTC) + timedelta(
        days=2
    )  # the order came two days after the contact entered; the window was one
    assert (await world.send("order_placed", occurred_at=late)).signalled == [journey]
    outcome = await world.finish(journey)
    assert outcome.ended_by == "completed"
    assert [s.step_id for s in outcome.history if s.status == "sent"] == ["hello", "again"]


PROFILE = """\
id: profile
name: Profile
category: care
trigger: {event: signed_up}
steps:
  - id: settle_in
    wait: 1d
  - id: await_profile
    wait_for: {event: profile_completed, timeout: 3d, on_timeout: nudge}
  - id: done
    exit: true
  - id: nudge
    send: {template: note, channels: [email]}
"""


async def test_wait_for_is_satisfied_by_an_event_that_came_before_the_step(world):
    world.deploy(PROFILE)
    [journey] = (await world.send("signed_up")).started
    await world.send("profile_completed")  # on day 0, before the journey reaches the step on day 1
    outcome = await world.finish(journey)
    assert [(s.step_id, s.status) for s in outcome.history] == [
        ("settle_in", "waited"), ("await_profile", "event_received"), ("done", "exited"),
    ]  # fmt: skip
    assert world.sent("profile") == []  # no nudge


CLICKS = """\
id: clicks
name: Clicks
category: care
trigger: {event: signed_up}
steps:
  - id: ask
    wait_for: {event: clicked, timeout: 1d, on_timeout: done}
  - id: thanks
    send: {template: note, channels: [email]}
  - id: again
    goto: ask
    max_visits: 3
  - id: done
    exit: true
"""


async def test_wait_for_uses_an_event_once_per_step(world):
    world.deploy(CLICKS)
    [journey] = (await world.send("signed_up")).started
    await world.send("clicked")
    outcome = await world.finish(journey)
    assert [(s.step_id, s.status) for s in outcome.history if s.step_id == "ask"] == [
        ("ask", "event_received"), ("ask", "timed_out"),
    ]  # fmt: skip
    assert world.sent("clicks") == [("thanks", "0")]


LATER = """\
id: later
name: Later
category: care
trigger: {event: signed_up}
steps:
  - id: pause
    wait: 1d
  - id: note
    send: {template: note, channels: [email]}
"""


async def test_a_running_journey_sends_the_words_it_enrolled_with(world):
    first = world.deploy(LATER)
    [old] = (await world.send("signed_up")).started
    (world.templates / "note.email.txt.j2").write_text("New words for {{ contact.id }}.")
    second = world.deploy(LATER)
    assert (first.version, second.version, second.templates_changed) == (1, 2, ["note.email.txt.j2"])
    with world.sessions.begin() as session:
        add_contact(session, "c-new-" + world.contact, email="new@example.com")
    [new] = (await world.send("signed_up", contact_id="c-new-" + world.contact)).started
    for template in world.templates.glob("note.*"):
        template.unlink()  # a template deleted fails nothing that runs
    assert (await world.finish(old)).history[-1].status == "sent"
    assert (await world.finish(new)).history[-1].status == "sent"
    emails = [
        email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
        for eml in world.settings.outbox_dir.glob("*.eml")
    ]
    words = {m["To"]: m.get_body(("plain",)).get_content().split()[0] for m in emails}
    assert words == {"ada@example.com": "Hello", "new@example.com": "New"}  # each its own version's words


TICKS = """\
id: ticks
name: Ticks
category: care
trigger: {event: signed_up}
steps:
  - id: tick
    wait: 1m
    max_visits: 500
  - id: again
    goto: tick
"""


async def test_a_long_loop_continues_as_new_and_finishes(world):
    world.deploy(TICKS)
    [journey] = (await world.send("signed_up", history_limit=400)).started
    first_run = (await world.env.client.get_workflow_handle(journey).describe()).run_id
    outcome = await world.finish(journey, step=timedelta(days=1))
    if os.environ.get("CARECAST_RECORD_HISTORIES"):  # the run that continued as new, for the replay test
        await record_history(world.env.client.get_workflow_handle(journey, run_id=first_run), "Journey", "_first_run")
    assert outcome.ended_by == "visits_spent"
    assert outcome.runs > 5  # a few hundred history events a run, at this limit
    assert (outcome.history[-1].step_id, outcome.history[-1].status) == ("tick", "spent")
    waited = [o.visit for o in outcome.history if o.step_id == "tick" and o.status == "waited"]
    assert waited[-1] == 500  # every visit counted across the runs


async def test_the_shipped_apology_follows_up_until_the_order_is_delivered(world):
    with world.sessions.begin() as session:
        deploy(session, ROOT / "templates", ROOT / "campaigns" / "delivery_delay.yaml")
    [journey] = (await world.send("delivery_delayed", order_id="A-9", new_eta="Friday")).started
    await world.env.sleep(timedelta(days=3))  # one follow-up, on day 2
    assert (await world.send("order_delivered", order_id="A-9")).signalled == [journey]
    assert (await world.finish(journey)).ended_by == "exit:order_delivered"
    assert world.sent("delivery_delay") == [("apologise", "0"), ("follow_up", "0")]


PROMOTE = """\
id: promote
name: Promote
category: care
trigger: {event: signed_up}
steps:
  - id: make_vip
    update: {lifecycle_stage: vip}
"""
VIP = """\
id: vip_welcome
name: VIP welcome
category: care
trigger: {stage: vip}
steps:
  - id: hello
    send: {template: note, channels: [email]}
"""


async def test_a_stage_move_whose_first_announcement_fails_is_still_announced(world, monkeypatch):
    world.deploy(PROMOTE)
    world.deploy(VIP)
    tell, failed = Relay._tell, []

    async def temporal_away_once(relay, row):
        if row.event_name == "stage_entered" and not failed:
            failed.append(row.workflow_id)
            raise RuntimeError("Temporal did not answer")
        return await tell(relay, row)

    monkeypatch.setattr(Relay, "_tell", temporal_away_once)
    [journey] = (await world.send("signed_up")).started
    assert (await world.finish(journey)).ended_by == "completed"
    [vip] = failed  # the update step's own announcement did not get through ...
    assert vip.startswith(f"journey/vip_welcome/{world.contact}/stage_entered.vip.")
    world.started.append(vip)
    await until_started(world.env.client, vip)  # ... the worker's relay delivered it a moment later
    outcome = await world.finish(vip)
    assert [(s.step_id, s.status) for s in outcome.history] == [("hello", "sent")]


OFFER = """\
id: offer
name: Offer
category: marketing
topic: offers
trigger: {event: browsed}
steps:
  - id: later
    wait: 1h
  - id: offer
    send: {template: note, channels: [email]}
"""


async def test_a_house_limit_tightened_by_a_deploy_reaches_a_running_journey(world):
    world.deploy(OFFER)
    [journey] = (await world.send("browsed")).started
    (world.campaigns / "policy.yaml").write_text("frequency_caps:\n  - {name: none_this_week, max: 0, per: 7d}\n")
    with world.sessions.begin() as session:
        assert deploy_house_rules(session, world.campaigns)
    outcome = await world.finish(journey)
    assert (outcome.history[-1].status, outcome.history[-1].reason) == ("skipped", "frequency_cap:none_this_week")


async def test_a_pause_heard_after_a_newer_resume_holds_nothing(world):
    world.deploy(LATER)
    [journey] = (await world.send("signed_up")).started
    handle, now = world.env.client.get_workflow_handle(journey), datetime.now(UTC)
    await handle.signal("pause", Control(at=now))
    await handle.signal("resume", Control(at=now + timedelta(seconds=2)))
    await handle.signal("pause", Control(at=now + timedelta(seconds=1)))  # given before the resume, delivered after
    assert (await world.finish(journey)).history[-1].status == "sent"


async def test_a_retried_update_step_still_announces_the_move_it_made(world, monkeypatch):
    world.deploy(PROMOTE)
    world.deploy(VIP)
    monkeypatch.setattr(record, "FAST_PATH_LEASE", timedelta(0))  # the relay loop may take rows at once
    send, failed = Relay.send, []

    async def crash_after_the_commit_once(relay, ids):
        if ids and not failed:
            failed.append(ids)
            raise RuntimeError("the worker died after the stage was written")  # the activity fails and is retried
        return await send(relay, ids)

    monkeypatch.setattr(Relay, "send", crash_after_the_commit_once)
    [journey] = (await world.send("signed_up")).started
    outcome = await world.finish(journey)
    assert failed and [(s.step_id, s.status) for s in outcome.history] == [("make_vip", "updated")]
    with world.sessions() as session:
        [vip] = session.scalars(select(Enrolment.workflow_id).where(Enrolment.campaign_id == "vip_welcome")).all()
    world.started.append(vip)
    await until_started(world.env.client, vip)  # the retry found the stage moved; the first attempt's row went
    assert [(s.step_id, s.status) for s in (await world.finish(vip)).history] == [("hello", "sent")]
