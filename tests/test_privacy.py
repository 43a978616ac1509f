"""A contact's rights from the command line: links revoked, data exported (GDPR art. 15), forgotten (art. 17)."""

import asyncio
import json
import subprocess
import sys
import uuid
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete, inspect, select, text

from carecast.api.app import create_app
from carecast.channels.outbox import OutboxProvider
from carecast.contacts.csv_import import import_contacts
from carecast.contacts.kept import AddressKey
from carecast.contacts.privacy import forget
from carecast.contacts.schema import ConsentInput, ContactInput, PreferencesInput
from carecast.contacts.suppressions import suppress
from carecast.contacts.writer import write_contacts
from carecast.delivery.events import add_event
from carecast.feedback import apply_sendgrid_events
from carecast.intake.ingest import ingest_event
from carecast.intake.record import IncomingEvent
from carecast.store.models import (
    ConsentRecord,
    Contact,
    Delivery,
    Enrolment,
    Event,
    JourneySignal,
    KeptOptOut,
    Preferences,
    Suppression,
    utcnow,
)
from carecast.worker import carecast_worker
from tests.factories import ROOT, add_contact, cli_environment, deploy

pytestmark = pytest.mark.store

CARECAST = str(Path(sys.executable).with_name("carecast"))
SECRET = "k" * 32
KEY = AddressKey(SECRET)
ADA = {"email": "ada@example.com", "phone": "+14155550101"}


def carecast(settings, database_url, *args):
    env = {"PATH": "/usr/bin:/bin", "CARECAST_HOME": str(settings.home), "CARECAST_DATABASE_URL": database_url,
           "CARECAST_SECRET_KEY": SECRET, "CARECAST_TEMPORAL_ADDRESS": "127.0.0.1:9"}  # fmt: skip
    return subprocess.run([CARECAST, *args], env=env, capture_output=True, text=True, timeout=60)


def choose(sessions, contact_id, source, wording, **given):
    with sessions.begin() as session:
        item = ContactInput(id=contact_id, preferences=PreferencesInput(**given))
        write_contacts(session, [item], source=source, wording=wording, address_key=None)


def bounce(email: str) -> dict:
    """A provider's words in a message's history: they quote the address."""
    return {"status": "bounced", "event": "bounce", "at": "2026-12-01T10:00:00+00:00",
            "reason": f"550 5.1.1 <{email}>: no such user", "url": f"https://shop.example/?u={email}"}  # fmt: skip


def message(session, n, contact_id="c-1", channel="email") -> Delivery:
    row = Delivery(idempotency_key=f"journey/win_back/{contact_id}/{n}/s/{contact_id}/0", workflow_id="w",
                   campaign_id="win_back", campaign_version=1, category="marketing", step_id="s",
                   contact_id=contact_id, channel=channel, status="sent",
                   status_history=[{"status": "sent", "at": "2026-12-01T09:00:00+00:00", "reason": "claimed"},
                                   bounce("ada@example.com" if contact_id == "c-1" else "bo@example.com")],
                   sent_at=utcnow())  # fmt: skip
    session.add(row)
    session.flush()
    email = "ada@example.com" if contact_id == "c-1" else "bo@example.com"
    add_event(session, row, "clicked", utcnow(), url=f"https://shop.example/?u={email}")  # a report row: no address
    return row


@pytest.fixture
def ada(sessions, settings):
    """c-1 has opted out of marketing, of a topic and of texts (STOP), and has events, journeys and outbox files."""
    with sessions.begin() as session:
        add_contact(session, "c-1", **ADA, sms_consent=True)
        add_contact(session, "c-2", email="bo@example.com", phone="+14155550102")
        session.add(Event(event_id="e-1", contact_id="c-1", name="order_placed", occurred_at=utcnow(),
                          data={"order_id": "A-1", "address": "1 Main St"}))  # fmt: skip
        session.add(Enrolment(campaign_id="win_back", campaign_version=1, contact_id="c-1", entry_key="e-1",
                              workflow_id="journey/win_back/c-1/e-1"))  # fmt: skip
        session.add(Enrolment(campaign_id="welcome", campaign_version=1, contact_id="c-1", entry_key="e-0",
                              workflow_id="journey/welcome/c-1/e-0", ended_at=utcnow()))  # fmt: skip
        ids = [message(session, 1).id, message(session, 2, channel="sms").id, message(session, 3, "c-2").id]
        suppress(session, "sms", ADA["phone"], "stop", "twilio:inbound")
    choose(sessions, "c-1", "one_click", "List-Unsubscribe (all marketing)", marketing=False)
    choose(sessions, "c-1", "preference_center", "Your messages from Acme", topics={"tips": False, "news": True})
    choose(sessions, "c-1", "sms_keyword", "SMS reply: stop it, this is Ada Lovelace", consent=ConsentInput(sms=False))
    settings.outbox_dir.mkdir(parents=True, exist_ok=True)
    for delivery_id, suffix in zip(ids, ("email.eml", "sms.txt", "email.eml"), strict=True):
        (settings.outbox_dir / f"{delivery_id:010d}-{suffix}").write_text("To: someone")
    return ids


def test_export_prints_everything_kept_about_the_contact(settings, database_url, ada):
    done = carecast(settings, database_url, "contacts", "export", "c-1")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["contact"]["email"] == "ada@example.com" and data["preferences"]["marketing_consent"] is False
    assert [(r["topic"], r["granted"], r["wording"]) for r in data["consent_records"]][0] == (
        "*", False, "List-Unsubscribe (all marketing)")  # fmt: skip
    assert [s["reason"] for s in data["suppressions"]] == ["stop"]
    assert data["events"][0]["data"]["order_id"] == "A-1"
    assert {j["campaign_id"] for j in data["journeys"]} == {"win_back", "welcome"}
    assert [m["channel"] for m in data["messages"]] == ["email", "sms"]
    unknown = carecast(settings, database_url, "contacts", "export", "c-404")
    assert unknown.returncode == 1 and "no contact 'c-404'" in unknown.stderr


def everything_stored(engine) -> str:
    """Every row of every table, as text: what a copy of the database would show."""
    with engine.connect() as connection:
        return "\n".join(
            repr(row)
            for table in inspect(engine).get_table_names()
            for row in connection.execute(text(f"SELECT * FROM {table}"))
        )


def test_forget_erases_the_contact_and_keeps_only_hashed_opt_outs(settings, database_url, engine, sessions, ada):
    done = carecast(settings, database_url, "contacts", "forget", "c-1", "--yes")
    assert done.returncode == 0, done.stderr
    assert "c-1 forgotten: 1 event(s)" in done.stdout and "2 outbox file(s) erased" in done.stdout
    assert "1 running journey(s) ended" in done.stdout  # told through the outbox: Temporal is away here
    stored = everything_stored(engine)
    for personal in ("ada@example.com", "4155550101", "1 Main St", "Lovelace"):
        assert personal not in stored
    with sessions() as session:
        assert session.get(Contact, "c-1") is None and session.get(Preferences, "c-1") is None
        assert session.scalars(select(ConsentRecord).where(ConsentRecord.contact_id == "c-1")).all() == []
        assert session.scalars(select(Event)).all() == []
        assert session.scalars(select(Suppression)).all() == []  # the STOP lives on as a kept opt-out
        kept = {(k.channel, k.topic, k.source) for k in session.scalars(select(KeptOptOut))}
        [stop] = session.scalars(select(JourneySignal)).all()
        counted = sorted(session.scalars(select(Delivery.contact_id)))
    assert kept == {(None, "*", "one_click"), (None, "tips", "preference_center"), ("sms", None, "sms_keyword"),
                    ("sms", None, "suppression:stop")}  # fmt: skip
    assert (stop.kind, stop.workflow_id) == ("stop", "journey/win_back/c-1/e-1")
    assert counted == ["c-1", "c-1", "c-2"]  # messages stay counted, with no address and no content
    with sessions() as session:
        history = session.get(Delivery, ada[0]).status_history
    assert history == [{"status": "sent", "at": "2026-12-01T09:00:00+00:00", "reason": "claimed"},
                       {"status": "bounced", "event": "bounce", "at": "2026-12-01T10:00:00+00:00"}]  # fmt: skip
    assert sorted(p.name.partition("-")[0] for p in settings.outbox_dir.iterdir()) == [f"{ada[2]:010d}"]
    again = carecast(settings, database_url, "contacts", "forget", "c-1", "--yes")
    assert again.returncode == 1 and "nothing to forget" in again.stderr


def test_a_later_import_of_the_same_address_starts_opted_out(settings, database_url, sessions, ada, tmp_path):
    assert carecast(settings, database_url, "contacts", "forget", "c-1", "--yes").returncode == 0
    csv = tmp_path / "back.csv"
    csv.write_text('id,email,phone,preferences\nc-9,ada@example.com,+14155550101,"{""consent"": {""sms"": true}}"\n'
                   "c-8,new@example.com,,\n")  # fmt: skip
    report = import_contacts(sessions, csv, address_key=KEY)
    assert report.rejected == []
    with sessions() as session:
        back, other = session.get(Preferences, "c-9"), session.get(Preferences, "c-8")
        trail = session.scalars(select(ConsentRecord).where(ConsentRecord.contact_id == "c-9")).all()
    assert (back.marketing_consent, back.topics, back.sms_consent) == (False, {"tips": False}, False)
    assert (other.marketing_consent, other.topics) == (True, {})
    kept = [r for r in trail if r.source == "kept_opt_out"]
    assert {(r.channel, r.topic, r.granted) for r in kept} == {(None, "*", False), (None, "tips", False),
                                                                ("sms", None, False)}  # fmt: skip
    assert any("List-Unsubscribe (all marketing)" in r.wording for r in kept)
    # another secret cannot tell the kept addresses: it keys other hashes
    with sessions.begin() as session:
        write_contacts(session, [ContactInput(id="c-7", email="ada@example.com")], source="api",
                       address_key=AddressKey("z" * 32))  # fmt: skip
    with sessions() as session:
        assert session.get(Preferences, "c-7").marketing_consent is True


def test_a_suppression_of_an_address_another_contact_has_stays(settings, database_url, sessions):
    with sessions.begin() as session:
        add_contact(session, "c-1", email="family@example.com", phone=None)
        add_contact(session, "c-2", email="family@example.com", phone=None)
        suppress(session, "email", "family@example.com", "hard_bounce", "sendgrid:bounce")
    assert carecast(settings, database_url, "contacts", "forget", "c-1", "--yes").returncode == 0
    with sessions() as session:
        assert session.scalars(select(Suppression.address)).all() == ["family@example.com"]
        assert session.scalars(select(KeptOptOut)).all() == []


def test_forget_asks_first_unless_told_yes(settings, database_url, sessions):
    with sessions.begin() as session:
        add_contact(session, "c-1")
    refused = subprocess.run([CARECAST, "contacts", "forget", "c-1"], input="n\n", capture_output=True, text=True,
                             env={"PATH": "/usr/bin:/bin", "CARECAST_HOME": str(settings.home),
                                  "CARECAST_DATABASE_URL": database_url, "CARECAST_SECRET_KEY": SECRET})  # fmt: skip
    assert refused.returncode == 1
    with sessions() as session:
        assert session.get(Contact, "c-1") is not None


def test_revoking_links_moves_the_contact_to_a_new_link_version(settings, database_url, sessions):
    with sessions.begin() as session:
        add_contact(session, "c-1")
    done = carecast(settings, database_url, "contacts", "revoke-links", "c-1")
    assert done.returncode == 0 and "version 1" in done.stdout
    with sessions() as session:
        assert session.get(Contact, "c-1").links_version == 1
    unknown = carecast(settings, database_url, "contacts", "revoke-links", "c-404")
    assert unknown.returncode == 1 and "no contact 'c-404'" in unknown.stderr


async def test_a_contact_created_through_the_api_with_a_forgotten_address_starts_opted_out(settings, engine, sessions):
    settings = replace(settings, api_key="a" * 32, secret_key=SECRET)
    with sessions.begin() as session:
        add_contact(session, "c-1", **ADA)
    choose(sessions, "c-1", "one_click", "List-Unsubscribe (all marketing)", marketing=False)
    with sessions.begin() as session:
        forget(session, "c-1", settings.address_key())

    async def no_temporal():
        raise RuntimeError("not needed here")

    app = create_app(settings, engine=engine, temporal=no_temporal)
    auth = {"Authorization": f"Bearer {'a' * 32}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://carecast") as api:
        put = await api.put("/v1/contacts/c-9", json={"email": "ada@example.com"}, headers=auth)
        event = {"event_id": "e-9", "contact_id": "c-10", "name": "signed_up", "occurred_at": utcnow().isoformat(),
                 "create_contact": {"email": "ada@example.com"}}  # fmt: skip
        posted = await api.post("/v1/events", json=event, headers=auth)
    assert put.status_code == 200 and posted.status_code == 200
    with sessions() as session:
        assert session.get(Preferences, "c-9").marketing_consent is False
        assert session.get(Preferences, "c-10").marketing_consent is False


@pytest.mark.integration
async def test_forget_ends_the_contacts_running_journeys(
    dev_server_env, settings, database_url, engine, sessions, tmp_path
):
    settings = replace(settings, task_queue=f"forget-{uuid.uuid4().hex[:6]}", secret_key=SECRET)
    with sessions.begin() as session:
        deploy(session, settings.templates_dir, ROOT / "campaigns" / "welcome_series.yaml")
        add_contact(session, "c-1", **ADA)
    event = IncomingEvent(f"signup-{uuid.uuid4().hex[:6]}", "c-1", "signed_up", utcnow())
    provider = OutboxProvider(settings.outbox_dir)
    async with carecast_worker(dev_server_env.client, settings, engine, provider) as worker, worker:
        result = await ingest_event(dev_server_env.client, sessions, settings.task_queue, event)
        [workflow_id] = result.started
        env = cli_environment(tmp_path, database_url, dev_server_env, settings.task_queue)
        done = await asyncio.to_thread(
            subprocess.run, [CARECAST, "contacts", "forget", "c-1", "--yes"],
            env={**env, "CARECAST_SECRET_KEY": SECRET}, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0 and "1 running journey(s) ended" in done.stdout, done.stderr
        handle = dev_server_env.client.get_workflow_handle(workflow_id)
        await asyncio.wait_for(handle.result(), timeout=30)
    assert "warning" not in done.stderr  # Temporal was told at once, not left to the relay


def test_an_existing_contact_given_a_forgotten_address_takes_its_opt_outs(settings, database_url, sessions, ada):
    assert carecast(settings, database_url, "contacts", "forget", "c-1", "--yes").returncode == 0
    with sessions.begin() as session:
        add_contact(session, "c-3", email="new@example.com", phone="+14155550103")
    with sessions.begin() as session:  # the address written another way: mail systems take it as the same
        write_contacts(session, [ContactInput(id="c-3", email="ADA@example.com", phone="+14155550101")],
                       source="api", address_key=KEY)  # fmt: skip
    with sessions() as session:
        prefs = session.get(Preferences, "c-3")
        suppressed = session.scalars(select(Suppression.address).where(Suppression.channel == "sms")).all()
    assert (prefs.marketing_consent, prefs.topics, prefs.sms_consent) == (False, {"tips": False}, False)
    assert suppressed == ["+14155550101"]  # the STOP is a suppression again, whatever consent says next


def test_a_write_that_gives_an_address_without_the_key_is_refused(sessions):
    with sessions.begin() as session, pytest.raises(ValueError, match="needs the address key"):
        write_contacts(session, [ContactInput(id="c-4", email="x@example.com")], source="api", address_key=None)


def test_opt_outs_kept_before_the_secret_changed_still_hold(settings, database_url, sessions, ada, tmp_path):
    assert carecast(settings, database_url, "contacts", "forget", "c-1", "--yes").returncode == 0
    rotated = AddressKey("n" * 32, previous=[SECRET])
    with sessions.begin() as session:
        write_contacts(session, [ContactInput(id="c-9", email="ada@example.com")], source="api", address_key=rotated)
    with sessions() as session:
        assert session.get(Preferences, "c-9").marketing_consent is False
        assert session.get(Contact, "c-9").links_version == 0  # a first address retires no link


def test_news_of_a_forgotten_contacts_message_brings_no_words_about_them_back(settings, database_url, sessions, ada):
    assert carecast(settings, database_url, "contacts", "forget", "c-1", "--yes").returncode == 0
    news = {"event": "bounce", "type": "bounce", "sg_event_id": "late-1", "delivery_id": str(ada[0]),
            "email": "ada@example.com", "reason": "550 5.1.1 <ada@example.com>: no such user"}  # fmt: skip
    with sessions.begin() as session:
        apply_sendgrid_events(session, [news], topics={})
    with sessions() as session:
        last = session.get(Delivery, ada[0]).status_history[-1]
        assert session.get(Contact, "c-1") is None
    assert last["event"] == "bounce" and "ada@example.com" not in str(last)


def test_a_contact_keeps_consent_it_gave_after_taking_a_forgotten_address(settings, database_url, sessions, ada):
    """Only the address just taken brings kept opt-outs: changing the other one later undoes nothing."""
    assert carecast(settings, database_url, "contacts", "forget", "c-1", "--yes").returncode == 0
    with sessions.begin() as session:
        write_contacts(session, [ContactInput(id="c-5", phone="+14155550101")], source="api", address_key=KEY)
    with sessions.begin() as session:
        item = ContactInput(id="c-5", preferences=PreferencesInput(consent=ConsentInput(sms=True)))
        write_contacts(session, [item], source="api", wording="Text me", address_key=KEY)
        session.execute(delete(Suppression))  # the START that lifted the carrier's block
    with sessions.begin() as session:
        write_contacts(session, [ContactInput(id="c-5", email="c5@example.com")], source="api", address_key=KEY)
    with sessions() as session:
        assert session.get(Preferences, "c-5").sms_consent is True
        assert session.scalars(select(Suppression)).all() == []
