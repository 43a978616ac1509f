"""Recording events (both databases): entry keys, re-entry under concurrency, and what the outbox holds."""

import asyncio
import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from carecast.intake.ingest import ingest_event, record
from carecast.intake.record import IncomingEvent, entry_key_of
from carecast.store.models import Enrolment, JourneySignal
from tests.factories import add_contact, deploy

pytestmark = pytest.mark.store

NEVER_AGAIN = """\
id: once
name: Once
category: care
trigger: {event: delivery_delayed}
entry: {key: order_id, reentry: never}
steps:
  - id: sorry
    send: {template: welcome, channels: [email]}
"""


@pytest.fixture
def campaign_folder(tmp_path):
    folder = tmp_path / "campaigns"
    folder.mkdir()

    def write(text, campaign_id="once"):
        (folder / f"{campaign_id}.yaml").write_text(text)
        return folder / f"{campaign_id}.yaml"

    return write


def at_once(count, work):
    """Runs `work(n)` in `count` threads released together; returns their results."""
    barrier, results = threading.Barrier(count), [None] * count

    def run(n):
        barrier.wait()
        results[n] = work(n)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.parametrize("reentry", ["never", "{after: 30d}"])
def test_twenty_concurrent_events_with_twenty_keys_enrol_once(sessions, settings, campaign_folder, reentry):
    with sessions.begin() as session:
        deploy(
            session,
            settings.templates_dir,
            campaign_folder(NEVER_AGAIN.replace("reentry: never", f"reentry: {reentry}")),
        )
        add_contact(session, "c-1")
    now = datetime.now(UTC)
    events = [IncomingEvent(f"e-{n}", "c-1", "delivery_delayed", now, {"order_id": f"A-{n}"}) for n in range(20)]
    results = at_once(20, lambda n: record(sessions, events[n]))
    assert sum(len(r.enrolled) for r in results) == 1
    assert sorted({reason for r in results for reason in r.not_entered.values()}) == [
        "already_enrolled" if reentry == "never" else "reentry_too_soon"
    ]
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Enrolment)) == 1
        assert session.scalar(select(func.count()).select_from(JourneySignal)) == 1


def test_an_entry_key_goes_into_the_workflow_id_as_it_is_only_when_short_and_safe():
    assert entry_key_of("A-1042") == "A-1042"
    assert entry_key_of(1042) == "1042"
    hashed = entry_key_of("ada@example.com")  # never an address in a workflow id
    assert hashed.startswith("~") and "ada" not in hashed and hashed == entry_key_of("ada@example.com")
    assert entry_key_of("x" * 65).startswith("~") and entry_key_of("a/b").startswith("~")


def test_a_repeated_event_records_nothing_new(sessions, settings, campaign_folder):
    with sessions.begin() as session:
        deploy(session, settings.templates_dir, campaign_folder(NEVER_AGAIN))
        add_contact(session, "c-1")
    event = IncomingEvent("e-1", "c-1", "delivery_delayed", datetime.now(UTC), {"order_id": "A-1"})
    first, again = record(sessions, event), record(sessions, event)
    assert (first.duplicate, again.duplicate) == (False, True)
    assert again.already_running == first.enrolled and again.signals == []


class AcceptsAll:
    """A Temporal client that takes every start and signal."""

    async def start_workflow(self, *args, **kwargs):
        return None


async def test_a_fast_path_leaves_its_settlement_to_the_next_transaction_or_a_second_later(
    sessions, settings, campaign_folder
):
    with sessions.begin() as session:
        deploy(
            session, settings.templates_dir, campaign_folder(NEVER_AGAIN.replace("reentry: never", "reentry: always"))
        )
        add_contact(session, "c-1")

    def waiting_rows():
        with sessions() as session:
            return session.scalar(select(func.count()).select_from(JourneySignal))

    async def ingest(n):
        event = IncomingEvent(f"e-{n}", "c-1", "delivery_delayed", datetime.now(UTC), {"order_id": f"A-{n}"})
        return await ingest_event(AcceptsAll(), sessions, "q", event, settle_later=True)

    assert (await ingest(1)).started and waiting_rows() == 1  # delivered, not yet settled
    await ingest(2)
    assert waiting_rows() == 1  # the first row went with the second event's transaction
    await asyncio.sleep(1.5)
    assert waiting_rows() == 0  # and the second a second later
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Enrolment).where(Enrolment.started_at.is_(None))) == 0
