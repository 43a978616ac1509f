"""`carecast simulate`: weeks of a contact's life on the time-skipping server, as a marketer runs it."""

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.utils import parsedate_to_datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from carecast.cli.simulate import _outboxes
from carecast.simulation.run import interval_times
from carecast.store.models import Delivery, Enrolment, Event
from tests.factories import add_contact, deploy

CARECAST = str(Path(sys.executable).with_name("carecast"))
ROOT = Path(__file__).resolve().parent.parent
ADA = """
id: ada
email: ada@example.com
timezone: Europe/Paris
attributes: {first_name: Ada, interests: running shoes}
"""


def carecast(home: Path, *args, database_url: str | None = None, timeout: float = 120):
    env = {"PATH": "/usr/bin:/bin", "CARECAST_HOME": str(home)}
    if database_url:
        env["CARECAST_DATABASE_URL"] = database_url
    return subprocess.run([CARECAST, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def simulate_json(home: Path, *args, database_url: str | None = None) -> dict:
    done = carecast(home, "simulate", *args, "--json", database_url=database_url)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def entries(timeline: dict, campaign: str) -> list[dict]:
    return [e for e in timeline["entries"] if e["campaign"] == campaign]


def at(entry: dict) -> datetime:
    return datetime.fromisoformat(entry["at"])


def test_welcome_series_over_three_weeks_follows_its_file(tmp_path):
    """settle_in waits 1d; tips goes then (or when quiet hours end); await_profile times out after 3d; nudge."""
    (tmp_path / "ada.yaml").write_text(ADA)
    ada, outbox = str(tmp_path / "ada.yaml"), tmp_path / "outbox"
    timeline = simulate_json(tmp_path / "home", ada, "--campaigns", "campaigns", "-e", "signed_up@0d", "--weeks", "3",
                             "--outbox", str(outbox), "--start", "monday 07:45")  # fmt: skip
    assert timeline["timezone"] == "Europe/Paris"
    start = datetime.fromisoformat(timeline["start"])
    local_start = start.astimezone(ZoneInfo("Europe/Paris"))
    assert (local_start.weekday(), local_start.hour, local_start.minute) == (0, 7, 45)
    assert timedelta(0) < start - datetime.now(UTC) <= timedelta(weeks=1)
    assert datetime.fromisoformat(timeline["end"]) - start == timedelta(weeks=3)
    series = entries(timeline, "welcome_series")
    steps = [(e["kind"], e["step"]) for e in series if e["kind"] != "deferred"]
    assert steps == [("entered", None), ("wait", None), ("sent", "tips"), ("wait", None), ("sent", "nudge_profile"),
                     ("ended", None)]  # fmt: skip
    entered, settle_in, tips, await_profile, nudge, ended = (e for e in series if e["kind"] != "deferred")
    assert settle_in["detail"] == "wait 1d" and await_profile["detail"] == "wait for profile_completed up to 3d"
    one_day_on = at(entered) + timedelta(days=1)
    deferrals = [e for e in series if e["kind"] == "deferred"]
    if deferrals:  # a day after signing up fell in the house's quiet hours (21:00-08:00): tips waits for 08:00
        assert [d["step"] for d in deferrals] == ["tips"] and "quiet hours until 08:00" in deferrals[0]["detail"]
        assert datetime.fromisoformat(tips["local"]).strftime("%H:%M") == "08:00"
        assert timedelta() < at(tips) - one_day_on <= timedelta(hours=11)
    else:
        assert abs(at(tips) - one_day_on) < timedelta(seconds=5)
    assert tips["channel"] == "email" and tips["detail"] == '"Three ways to get more out of Acme, Ada"'
    assert abs(at(nudge) - at(tips) - timedelta(days=3)) < timedelta(seconds=5)  # the wait_for's timeout
    assert ended["detail"] == "ran to its end"
    # the messages, as the outbox wrote them, dated in simulated time
    written = {parsedate_to_datetime(message_from_bytes(p.read_bytes())["Date"]) for p in outbox.glob("*.eml")}
    assert written == {at(e).replace(microsecond=0) for e in timeline["entries"] if e["kind"] == "sent"}
    # welcome (transactional) went at once; the contact was never in back_in_stock's audience
    [welcome] = [e for e in entries(timeline, "welcome") if e["kind"] == "sent"]
    assert at(welcome) - start < timedelta(minutes=1)
    assert {e["kind"] for e in entries(timeline, "back_in_stock")} == {"not_reached"}


@pytest.mark.store
def test_a_stored_contact_runs_the_deployed_campaigns_with_their_history_and_the_store_is_untouched(
    tmp_path, settings, database_url, sessions
):
    """What was sent to them lately counts toward the caps; the simulation writes nothing to the real store."""
    now = datetime.now(UTC)
    with sessions.begin() as session:
        deploy(session, settings.templates_dir, ROOT / "campaigns" / "welcome_series.yaml")
        add_contact(session, "c-7", timezone="Europe/Paris", attributes={"first_name": "Grace"})
        for n in range(3):  # three marketing messages five days ago: the weekly cap (3 in 7d) is full for 2 more days
            session.add(Delivery(idempotency_key=f"earlier/{n}", workflow_id="earlier", campaign_id="spring_sale",
                                 campaign_version=1, category="marketing", step_id="send", contact_id="c-7",
                                 channel="email", status="sent", sent_at=now - timedelta(days=5, hours=n)))  # fmt: skip
        # a journey of theirs that ended: history, not part of the simulation (its workflow is not on the test server)
        session.add(Enrolment(campaign_id="order_confirmation", campaign_version=1, contact_id="c-7", entry_key="A-0",
                              workflow_id="journey/order_confirmation/c-7/A-0", enrolled_at=now - timedelta(days=9),
                              ended_at=now - timedelta(days=9)))  # fmt: skip

    def counts():
        with sessions() as session:
            return [session.scalar(select(func.count()).select_from(t)) for t in (Delivery, Event, Enrolment)]

    before = counts()
    timeline = simulate_json(settings.home, "c-7", "-e", "signed_up@0d", "--weeks", "2", database_url=database_url)
    assert counts() == before
    assert not [e for e in timeline["entries"] if e["campaign"] == "order_confirmation"]
    tips = [e for e in entries(timeline, "welcome_series") if e["step"] == "tips"]
    # a day after signing up (on_cap: defer, max_hold 2d) it waits for the oldest of the three to leave the week
    assert tips[0]["kind"] == "deferred" and "marketing weekly" in tips[0]["detail"], tips
    assert tips[-1]["kind"] == "sent" and at(tips[-1]) >= now + timedelta(days=2) - timedelta(hours=2)


def test_two_contacts_side_by_side_a_night_worker_with_own_quiet_hours(tmp_path):
    (tmp_path / "ada.yaml").write_text(ADA)
    (tmp_path / "sam.yaml").write_text(
        "id: sam\nemail: sam@example.com\ntimezone: Europe/Paris\nattributes: {first_name: Sam}\n"
        'preferences: {quiet_hours: {start: "06:00", end: "15:00"}}\n'
    )
    done = carecast(tmp_path / "home", "simulate", str(tmp_path / "ada.yaml"), str(tmp_path / "sam.yaml"),
                    "--campaigns", "campaigns", "-e", "signed_up@0d", "--weeks", "1")  # fmt: skip
    assert done.returncode == 0, done.stderr
    head, *rows = done.stdout.splitlines()
    assert "contact ada (Europe/Paris)" in head and "contact sam (Europe/Paris)" in head
    left = [r for r in rows if "welcome_series · tips · email" in r and not r.startswith(" ")]
    right = [r for r in rows if "welcome_series · tips · email" in r and r.startswith(" ")]
    assert len(left) == len(right) == 1
    assert int(right[0].split()[3][:2]) >= 15  # Sam's own quiet hours hold the marketing tip until 15:00


@pytest.mark.parametrize(
    "args, says",
    [
        (["-e", "signed_up"], "no @OFFSET; write NAME[:JSON]@OFFSET"),
        (["-e", "order_placed:{order_id: 1}@1d"], "its data is not JSON"),
        (["-e", "signed_up@2x"], "'2x' is not an offset"),
        (["-e", "Signed Up@0d"], "is not an event name"),
        (["--weeks", "0"], "--weeks 0: simulate between a moment and 52 weeks"),
        (["--campaigns", "nowhere"], "--campaigns nowhere: not a folder of campaign files"),
        (["--weeks", "1", "-e", "signed_up@5w"], "event signed_up at 5w is after the end of the simulation (1w)"),
        (["--start", "tomorrow"], "start 'tomorrow': write a weekday and a time (monday 09:00) or a date and time"),
        (["--start", "2020-01-06T09:00"], "start '2020-01-06T09:00' is in the past: a simulation runs forward"),
    ],
)
def test_a_scenario_that_cannot_run_says_why(tmp_path, args, says):
    (tmp_path / "ada.yaml").write_text(ADA)
    done = carecast(tmp_path / "home", "simulate", str(tmp_path / "ada.yaml"), "--campaigns", "campaigns", *args)
    assert done.returncode == 1 and says in done.stderr, done.stderr


def test_a_contact_file_with_a_mistake_is_reported_at_its_line(tmp_path):
    (tmp_path / "bad.yaml").write_text("id: bad\nemail: bad@example.com\ntimezone: Mars/Olympus\n")
    done = carecast(tmp_path / "home", "simulate", str(tmp_path / "bad.yaml"), "--campaigns", "campaigns")
    assert done.returncode == 1
    assert "bad.yaml:3" in done.stderr and "unknown time zone 'Mars/Olympus'" in done.stderr


def test_an_events_file_is_read_and_its_mistakes_are_at_their_line(tmp_path):
    (tmp_path / "ada.yaml").write_text(ADA)
    (tmp_path / "events.yaml").write_text("events:\n- {event: signed_up, at: 0d}\n- {event: account_closed, at: 2d}\n")
    timeline = simulate_json(tmp_path / "home", str(tmp_path / "ada.yaml"), "--campaigns", "campaigns", "--events",
                             str(tmp_path / "events.yaml"), "--weeks", "1")  # fmt: skip
    [ended] = [e for e in entries(timeline, "welcome_series") if e["kind"] == "ended"]
    assert ended["detail"] == "account_closed came: an exit event"
    assert not [e for e in entries(timeline, "welcome_series") if e["kind"] == "sent" and at(e) > at(ended)]
    (tmp_path / "events.yaml").write_text("events:\n  - {event: signed_up, at: soon}\n")
    done = carecast(tmp_path / "home", "simulate", str(tmp_path / "ada.yaml"), "--campaigns", "campaigns", "--events",
                    str(tmp_path / "events.yaml"))  # fmt: skip
    assert done.returncode == 1 and "events.yaml:2" in done.stderr and "'soon' is not an offset" in done.stderr


@pytest.mark.store
def test_nothing_deployed_says_how_to_simulate_the_files(tmp_path, settings, database_url, engine):
    (tmp_path / "ada.yaml").write_text(ADA)
    done = carecast(settings.home, "simulate", str(tmp_path / "ada.yaml"), database_url=database_url)
    assert done.returncode == 1
    assert "no campaign is deployed" in done.stderr and "--campaigns campaigns/" in done.stderr


def test_stages_are_recomputed_on_the_hour_as_the_schedule_fires():
    start = datetime(2026, 12, 10, 9, 30, tzinfo=UTC)
    assert interval_times(timedelta(hours=1), start, start + timedelta(hours=3)) == [
        datetime(2026, 12, 10, h, tzinfo=UTC) for h in (10, 11, 12)
    ]
    assert interval_times(timedelta(hours=1), start, start + timedelta(minutes=20)) == []


def test_two_contacts_of_the_same_name_keep_their_messages_apart(tmp_path):
    assert _outboxes(tmp_path, ["a/ada.yaml", "b/ada.yaml"]) == [tmp_path / "1-ada", tmp_path / "2-ada"]
    assert _outboxes(tmp_path, ["ada.yaml", "c-7"]) == [tmp_path / "ada", tmp_path / "c-7"]
    assert _outboxes(None, ["ada.yaml", "c-7"]) == [None, None]


def test_two_journeys_of_one_campaign_carry_their_key_and_a_refused_entry_says_why_in_words(tmp_path):
    (tmp_path / "ada.yaml").write_text(ADA)
    timeline = simulate_json(tmp_path / "home", str(tmp_path / "ada.yaml"), "--campaigns", "campaigns", "--weeks", "1",
                             "-e", 'order_placed:{"order_id":"A-1"}@0d', "-e", 'order_placed:{"order_id":"A-2"}@1d',
                             "-e", "delivery_delayed@2d")  # fmt: skip
    ended = [e["detail"] for e in entries(timeline, "order_confirmation") if e["kind"] == "ended"]
    assert ended == ["[A-1] ran to its end", "[A-2] ran to its end"]
    [refused] = [e for e in entries(timeline, "delivery_delay") if e["kind"] == "not_entered"]
    assert refused["detail"] == "the event has no order_id, which keys its journeys"
