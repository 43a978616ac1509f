"""What delivering outbox rows leaves to write: written once, in any order, and kept when a write fails."""

import pytest
from sqlalchemy import select

from carecast.intake import settlement
from carecast.intake.settlement import Settlement, flush, leave
from carecast.store.models import Contact, Enrolment
from tests.factories import add_contact

pytestmark = pytest.mark.store


def enrolment(sessions, key: str = "e-1") -> int:
    with sessions.begin() as session:
        if session.get(Contact, "c-1") is None:
            add_contact(session)
        row = Enrolment(campaign_id="welcome", campaign_version=1, contact_id="c-1", entry_key=key,
                        workflow_id=f"journey/welcome/c-1/{key}")  # fmt: skip
        session.add(row)
        session.flush()
        return row.id


def marks(sessions, enrolment_id):
    with sessions() as session:
        row = session.execute(select(Enrolment.started_at, Enrolment.ended_at).where(Enrolment.id == enrolment_id))
        return row.one()


def test_a_start_settled_after_the_end_is_still_written(sessions):
    """The worker's end of a short journey can commit before the API settles its start."""
    enrolled = enrolment(sessions)
    for written in (Settlement(ended={enrolled: None}), Settlement(started={enrolled})):
        with sessions.begin() as session:
            written.write(session)
    started, ended = marks(sessions, enrolled)
    assert started is not None and ended is not None


async def test_a_settlement_whose_write_fails_is_kept_for_the_next(sessions, monkeypatch):
    enrolled = enrolment(sessions)
    write, failures = Settlement.write, []

    def store_away_once(self, session, now=None):
        if not failures:
            failures.append(1)
            raise ConnectionError("the store did not answer")
        write(self, session, now)

    monkeypatch.setattr(Settlement, "write", store_away_once)
    monkeypatch.setattr(settlement, "FLUSH_AFTER_SECONDS", 3600)  # no background flush: this test flushes
    leave(sessions, Settlement(ended={enrolled: "completed"}))
    with pytest.raises(ConnectionError):
        flush(sessions)
    flush(sessions)
    assert marks(sessions, enrolled)[1] is not None


def test_how_a_journey_ended_is_written_whether_its_end_was_learnt_before_or_after(sessions):
    """The relay learns that a journey is over (not how); the journey's own activity says how."""
    first, second = enrolment(sessions), enrolment(sessions, key="B")
    for written in (Settlement(ended={first: None}), Settlement(ended={first: "goal", second: "exit:order_cancelled"}),
                    Settlement(ended={second: None})):  # fmt: skip
        with sessions.begin() as session:
            written.write(session)
    with sessions() as session:
        rows = session.execute(select(Enrolment.id, Enrolment.ended_by, Enrolment.ended_at).order_by(Enrolment.id))
        assert [(r.ended_by, r.ended_at is not None) for r in rows] == [("goal", True), ("exit:order_cancelled", True)]
