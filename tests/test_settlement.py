"""What delivering outbox rows leaves to write: written once, in any order, and kept when a write fails."""

import pytest
from sqlalchemy import select

from carecast.intake import settlement
from carecast.intake.settlement import Settlement, flush, leave
from carecast.store.models import Enrolment
from tests.factories import add_contact

pytestmark = pytest.mark.store


def enrolment(sessions) -> int:
    with sessions.begin() as session:
        add_contact(session)
        row = Enrolment(campaign_id="welcome", campaign_version=1, contact_id="c-1", entry_key="e-1",
                        workflow_id="journey/welcome/c-1/e-1")  # fmt: skip
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
    for written in (Settlement(ended={enrolled}), Settlement(started={enrolled})):
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
    leave(sessions, Settlement(ended={enrolled}))
    with pytest.raises(ConnectionError):
        flush(sessions)
    flush(sessions)
    assert marks(sessions, enrolled)[1] is not None
