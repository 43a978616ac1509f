"""Suppressions: normalised addresses, known reasons, idempotent, obeyed by every campaign."""

import pytest
from sqlalchemy import select

from carecast.contacts.suppressions import normalised_address, suppress
from carecast.store.models import Suppression

pytestmark = pytest.mark.store


def test_suppressing_twice_keeps_one_row_and_the_first_reason(sessions):
    with sessions.begin() as session:
        assert suppress(session, "email", "Ada@EXAMPLE.com", "hard_bounce", source="sendgrid") is True
        assert suppress(session, "email", "Ada@example.com", "manual", source="cli") is False
    with sessions() as session:
        [row] = session.scalars(select(Suppression)).all()
    assert (row.address, row.reason, row.source) == ("Ada@example.com", "hard_bounce", "sendgrid")


def test_phone_suppressions_are_stored_in_e164():
    assert normalised_address("sms", "+1 (415) 555-0101") == "+14155550101"


@pytest.mark.parametrize(
    ("channel", "address", "reason", "message"),
    [
        ("fax", "+14155550101", "manual", "unknown channel 'fax'"),
        ("sms", "555-0101", "manual", "invalid phone '555-0101'"),
        ("email", "ada", "manual", "invalid email 'ada'"),
        ("email", "ada@example.com", "annoyed", "unknown reason 'annoyed'; use one of hard_bounce, spam_complaint"),
    ],
)
def test_bad_input_is_refused_with_the_reason(sessions, channel, address, reason, message):
    with pytest.raises(ValueError, match=message), sessions.begin() as session:
        suppress(session, channel, address, reason, source="cli")
