"""`carecast contacts audit-saves`: the saves the one-click defect made, found from the consent trail."""

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from carecast.contacts.schema import ConsentInput, ContactInput, PreferencesInput
from carecast.contacts.writer import unsubscribe_wording, write_contacts
from carecast.store.models import ConsentRecord, Delivery, Preferences, utcnow
from tests.factories import add_contact

pytestmark = pytest.mark.store

CARECAST = str(Path(sys.executable).with_name("carecast"))
TITLE = "Your messages from Acme"  # what the old form save recorded as its wording


def save(sessions, contact_id, source="preference_center", wording=TITLE, days_ago=0, **given):
    """A write as `source` made it, `days_ago` days back: its consent records and the preferences' stamp."""
    began = utcnow()
    with sessions.begin() as session:
        item = ContactInput(id=contact_id, preferences=PreferencesInput(**given))
        write_contacts(session, [item], source=source, wording=wording, address_key=None)
    with sessions.begin() as session:
        back = timedelta(days=days_ago)
        query = select(ConsentRecord).where(ConsentRecord.contact_id == contact_id, ConsentRecord.recorded_at >= began)
        for record in session.scalars(query):
            record.recorded_at -= back
        prefs = session.get(Preferences, contact_id)
        prefs.updated_at -= back


def defect_save(sessions, contact_id, days_ago=2):
    """What main did with a multipart one-click or an empty POST: the form with every box unticked."""
    save(
        sessions,
        contact_id,
        days_ago=days_ago,
        consent=ConsentInput(email=False, sms=False, voice=False),
        topics={"offers": False, "tips": False},
        preferred_channels=[],
        quiet_hours=None,
        marketing=True,
    )


@pytest.fixture
def trail(sessions):
    with sessions.begin() as session:
        for contact_id in ("wiped", "wiped-after-unsubscribing", "genuine-sms-off", "genuine-stop-all",
                           "saved-again", "saved-quiet-hours-after", "wiped-then-fixed-by-api", "wiped-then-button",
                           "never-saved"):  # fmt: skip
            add_contact(session, contact_id, sms_consent=True)
        session.add(
            Delivery(idempotency_key="offer/1", workflow_id="broadcast/back_in_stock/1", campaign_id="back_in_stock",
                     campaign_version=1, category="marketing", step_id="send", contact_id="wiped", channel="email",
                     status="delivered", sent_at=utcnow() - timedelta(days=3))
        )  # fmt: skip
    defect_save(sessions, "wiped")
    save(sessions, "wiped-after-unsubscribing", source="one_click", wording=unsubscribe_wording(None), marketing=False,
         days_ago=3)  # fmt: skip
    defect_save(sessions, "wiped-after-unsubscribing")
    save(sessions, "genuine-sms-off", consent=ConsentInput(email=True, sms=False, voice=False), marketing=True)
    save(sessions, "genuine-stop-all", consent=ConsentInput(email=False, sms=False, voice=False), marketing=False)
    defect_save(sessions, "saved-again")
    save(sessions, "saved-again", consent=ConsentInput(email=True, sms=False, voice=False), marketing=True)
    defect_save(sessions, "saved-quiet-hours-after")
    save(sessions, "saved-quiet-hours-after", quiet_hours={"start": "22:00", "end": "07:00"})
    defect_save(sessions, "wiped-then-fixed-by-api")
    save(sessions, "wiped-then-fixed-by-api", source="api", wording=None, consent=ConsentInput(email=True))
    defect_save(sessions, "wiped-then-button")
    save(sessions, "wiped-then-button", wording=unsubscribe_wording("news"), topics={"news": False})


def audit(tmp_path, database_url, *args):
    env = {**os.environ, "CARECAST_HOME": str(tmp_path / "home"), "CARECAST_DATABASE_URL": database_url}
    done = subprocess.run(
        [CARECAST, "contacts", "audit-saves", *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def store_state(sessions):
    with sessions() as session:
        records = session.scalar(select(func.count()).select_from(ConsentRecord))
        prefs = [
            (p.contact_id, p.updated_at) for p in session.scalars(select(Preferences).order_by(Preferences.contact_id))
        ]
    return records, prefs


def test_lists_the_contacts_the_defect_wiped_and_no_one_else(tmp_path, database_url, sessions, trail):
    before = store_state(sessions)
    found = {row["contact_id"]: row for row in json.loads(audit(tmp_path, database_url, "--json"))}
    assert sorted(found) == [
        "saved-quiet-hours-after", "wiped", "wiped-after-unsubscribing", "wiped-then-button", "wiped-then-fixed-by-api",
    ]  # fmt: skip
    wiped = found["wiped"]
    assert wiped["channels_withdrawn"] == ["email", "sms"] and wiped["topics_left"] == ["offers", "tips"]
    assert (wiped["marketing_switched_on"], wiped["marketing_before"]) == (False, True)
    assert wiped["channels_before"] == ["email", "sms"] and wiped["last_email_before"] == "back_in_stock"
    assert (wiped["changed_since_by"], wiped["preferences_changed_since"], wiped["channels_now"]) == ([], False, [])
    switched = found["wiped-after-unsubscribing"]
    assert (switched["marketing_switched_on"], switched["marketing_before"]) == (True, False)
    repaired = found["wiped-then-fixed-by-api"]
    assert (repaired["changed_since_by"], repaired["channels_now"]) == (["api"], ["email"])
    assert found["wiped-then-button"]["changed_since_by"] == ["preference_center"]
    quiet = found["saved-quiet-hours-after"]  # came back and saved quiet hours: no consent record, but a change
    assert (quiet["changed_since_by"], quiet["preferences_changed_since"]) == ([], True)
    assert store_state(sessions) == before  # it only reads


def test_prints_one_line_per_contact_and_what_to_read_next(tmp_path, database_url, trail):
    lines = audit(tmp_path, database_url).splitlines()
    [wiped] = [line for line in lines if line.startswith("wiped  ")]
    assert "· withdrew email, sms · left topics offers, tips · marketing left on · before: email, sms ·" in wiped
    assert wiped.endswith("· last email before: back_in_stock · now: no channel · unchanged since")
    [switched] = [line for line in lines if line.startswith("wiped-after-unsubscribing  ")]
    assert "marketing switched on · before: email, sms, no marketing" in switched
    [repaired] = [line for line in lines if line.startswith("wiped-then-fixed-by-api  ")]
    assert repaired.endswith("· now: email · changed since by api")
    [quiet] = [line for line in lines if line.startswith("saved-quiet-hours-after  ")]
    assert quiet.endswith("· preferences changed since")
    assert lines[-1] == '5 contact(s) to review (README: "Saves to review after the one-click defect")'


def test_an_untouched_store_has_nothing_to_review(tmp_path, database_url, engine):
    assert audit(tmp_path, database_url) == "no preference-center save looks like the one-click defect\n"
