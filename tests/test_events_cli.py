"""`carecast events send`: an event from the command line, creating its contact when asked, as the API can."""

import subprocess
import sys
from pathlib import Path

import pytest

from carecast.store.models import Contact, Event

pytestmark = pytest.mark.store

CARECAST = str(Path(sys.executable).with_name("carecast"))


def send(settings, database_url, *args):
    env = {"PATH": "/usr/bin:/bin", "CARECAST_HOME": str(settings.home), "CARECAST_DATABASE_URL": database_url,
           "CARECAST_SECRET_KEY": "k" * 32, "CARECAST_TEMPORAL_ADDRESS": "127.0.0.1:9"}  # fmt: skip
    return subprocess.run([CARECAST, "events", "send", *args], env=env, capture_output=True, text=True, timeout=60)


def test_the_event_may_create_its_contact(settings, database_url, sessions):
    done = send(settings, database_url, "c-new", "signed_up", "--create-contact", '{"email": "Ada@Example.com"}')
    assert done.returncode == 0, done.stderr
    assert "contact    c-new created" in done.stdout and "recorded" in done.stdout
    with sessions() as session:
        assert session.get(Contact, "c-new").email == "Ada@example.com"
        assert [e.name for e in session.query(Event).filter_by(contact_id="c-new")] == ["signed_up"]
    again = send(settings, database_url, "c-new", "signed_up", "--create-contact", '{"email": "other@example.com"}')
    assert again.returncode == 0 and "created" not in again.stdout  # an existing contact is left as it is
    with sessions() as session:
        assert session.get(Contact, "c-new").email == "Ada@example.com"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["c-2", "order placed", "--create-contact", '{"email": "a@example.com"}'], "event name 'order placed' must"),
        (["c-2", "signed_up", "--id", "x" * 129, "--create-contact", "{}"], "--id must be 1 to 128 characters"),
    ],
)
def test_an_event_it_cannot_record_creates_no_contact(settings, database_url, sessions, args, says):
    done = send(settings, database_url, *args)
    assert done.returncode == 1 and says in done.stderr
    with sessions() as session:
        assert session.query(Contact).count() == 0


@pytest.mark.parametrize(
    ("contact", "fields", "says"),
    [
        ("c-2", '{"email": "not an address"}', "--create-contact: email: "),
        ("c-2", '{"emial": "a@example.com"}', "--create-contact: emial: Extra inputs are not permitted"),
        ("ada@example.com", '{"email": "a@example.com"}', "--create-contact: "),
    ],
)
def test_a_contact_it_cannot_create_is_refused_and_nothing_is_stored(settings, database_url, sessions, contact,
                                                                     fields, says):  # fmt: skip
    done = send(settings, database_url, contact, "signed_up", "--create-contact", fields)
    assert done.returncode == 1 and says in done.stderr and "Traceback" not in done.stderr
    with sessions() as session:
        assert session.query(Contact).count() == 0 and session.query(Event).count() == 0
