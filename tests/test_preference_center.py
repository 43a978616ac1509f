"""GET|POST /u/{token}: the preference center, one-click unsubscribe, and what a bad link sees."""

import re
from dataclasses import replace
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from carecast.api.app import create_app
from carecast.campaign.load import campaign_files
from carecast.contacts.kept import AddressKey
from carecast.contacts.privacy import revoke_links
from carecast.contacts.schema import ContactInput
from carecast.contacts.writer import write_contacts
from carecast.intake.controls import control_campaign
from carecast.store.models import ConsentRecord, Contact, Event, Preferences, utcnow
from tests.factories import add_contact, deploy, legacy_link_token

pytestmark = pytest.mark.store


async def unreachable_temporal():
    raise RuntimeError("not needed here")


@pytest.fixture
def center(settings, engine, sessions):
    settings = replace(settings, secret_key="preference secret")
    with sessions.begin() as session:
        deploy(session, settings.templates_dir, *campaign_files(settings.campaigns_dir))
        add_contact(session, "c-1", email="ada@example.com", phone="+14155550101", sms_consent=True)
        add_contact(session, "c-fr", email="zoe@example.fr", phone="+33612345678", locale="fr-FR")
    app = create_app(settings, engine=engine, temporal=unreachable_temporal)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://carecast")
    client.links = settings.link_signer()
    client.secret = settings.secret_key
    return client


def prefs(sessions, contact_id="c-1") -> Preferences:
    with sessions() as session:
        return session.get(Preferences, contact_id)


MULTIPART_BOUNDARY = "----carecast-test-boundary"


def multipart(*fields: tuple[str, str]) -> dict:
    """A multipart/form-data request body, as RFC 8058 asks mailbox providers to send one-click."""
    parts = [
        f'--{MULTIPART_BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields
    ]
    body = "".join(parts) + f"--{MULTIPART_BOUNDARY}--\r\n"
    return {"content": body, "headers": {"Content-Type": f"multipart/form-data; boundary={MULTIPART_BOUNDARY}"}}


URLENCODED = {"Content-Type": "application/x-www-form-urlencoded"}


def choices(sessions, contact_id="c-1") -> dict:
    """Everything a contact chose, column by column."""
    row = prefs(sessions, contact_id)
    return {column.key: getattr(row, column.key) for column in Preferences.__table__.columns}


def consent_records(sessions, contact_id="c-1") -> list[tuple]:
    with sessions() as session:
        rows = session.scalars(select(ConsentRecord).where(ConsentRecord.contact_id == contact_id))
        return [(r.channel, r.topic, r.granted, r.source) for r in rows]


@pytest.fixture
def chosen(center, sessions):
    """c-1 has made choices of their own: SMS on, a preferred channel, quiet hours, a topic off."""
    with sessions.begin() as session:
        row = session.get(Preferences, "c-1")
        row.preferred_channels = ["sms"]
        row.quiet_hours_start, row.quiet_hours_end = "21:00", "08:00"
        row.topics = {"tips": False}
    return choices(sessions)


async def test_the_page_shows_channels_topics_quiet_hours_and_pause(center):
    page = await center.get(f"/u/{center.links.token('c-1', version=0)}")
    assert page.status_code == 200
    html = page.text
    assert '<html lang="en">' in html
    # enough of each address to recognise it, not to learn it from a forwarded link
    assert "Email to a•••@example.com" in html and "Text messages to •••0101" in html
    assert "ada@example.com" not in html and "4155550101" not in html
    assert 'name="topic" value="offers"' in html and 'name="topic" value="order_updates"' in html
    assert 'type="time" name="quiet_start"' in html and "America/Los_Angeles" in html
    assert 'name="pause_weeks"' in html and 'name="no_marketing"' in html
    assert "<script" not in html  # works without JavaScript
    # every input has a label around it, every group a legend
    assert html.count("<fieldset") == html.count("<legend>")


async def test_the_page_speaks_the_contacts_language(center):
    page = await center.get(f"/u/{center.links.token('c-fr', version=0)}")
    assert '<html lang="fr">' in page.text
    assert "Comment pouvons-nous vous joindre ?" in page.text


@pytest.mark.parametrize(
    "token",
    ["nonsense", "eyJhIjoxfQ.AAAAAAAAAAAAAAAAAAAAAA", "", "...", "éé.ü", "eyJhIjoxfQ.AAAAAAAAAAAAAAAAAAAAAé"],
    ids=["garbage", "forged-signature", "empty", "dots", "non-ascii", "non-ascii-signature"],
)
async def test_a_bad_token_is_a_friendly_404(center, token):
    page = await center.get(f"/u/{token}")
    assert page.status_code == 404
    assert "This link does not work" in page.text


async def test_an_altered_token_is_refused_and_changes_nothing(center, sessions):
    genuine, other = center.links.token("c-1", "offers", version=0), center.links.token("c-fr", "offers", version=0)
    middle = len(genuine) // 2
    swapped = "B" if genuine[middle] == "A" else "A"
    for altered in (genuine[:middle] + swapped + genuine[middle + 1 :], other[:middle] + genuine[middle:]):
        response = await center.post(f"/u/{altered}", content="List-Unsubscribe=One-Click")
        assert response.status_code == 404
    assert prefs(sessions, "c-fr").topics == {} and prefs(sessions, "c-1").topics == {}


async def test_one_click_unsubscribe_of_a_topic_needs_no_login_or_cookie(center, sessions):
    token = center.links.token("c-1", "offers", version=0)
    response = await center.post(
        f"/u/{token}",
        content="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert "You will no longer receive Offers messages." in response.text
    assert prefs(sessions).topics == {"offers": False}
    with sessions() as session:
        record = session.scalars(select(ConsentRecord).where(ConsentRecord.topic == "offers")).one()
    assert (record.granted, record.source) == (False, "one_click")


async def test_one_click_without_a_topic_unsubscribes_from_all_marketing(center, sessions):
    response = await center.post(f"/u/{center.links.token('c-1', version=0)}", content="List-Unsubscribe=One-Click")
    assert response.status_code == 200
    assert prefs(sessions).marketing_consent is False


# What a browser posts with every box left as the page showed it and nothing ticked.
FORM = {"action": "save", "preferred": "", "quiet_start": "", "quiet_end": "", "pause_weeks": "0"}


def encoded(form: dict, encoding: str) -> dict:
    """The form as a browser posts it: urlencoded by default, multipart with enctype="multipart/form-data"."""
    if encoding == "urlencoded":
        return {"data": form}
    pairs = [(name, v) for name, value in form.items() for v in (value if isinstance(value, list) else [value])]
    return multipart(*pairs)


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
async def test_saving_the_form_changes_the_store_with_a_consent_trail(center, sessions, encoding):
    token = center.links.token("c-1", version=0)
    form = {
        "action": "save",
        "consent": ["email"],  # SMS unticked
        "preferred": "email",
        "topic": ["order_updates"],  # offers unticked
        "quiet_start": "20:00",
        "quiet_end": "09:30",
        "pause_weeks": "2",
    }
    response = await center.post(f"/u/{token}", **encoded(form, encoding))
    assert response.status_code == 303 and response.headers["location"] == f"/u/{token}?saved=1"
    saved = prefs(sessions)
    assert (saved.email_consent, saved.sms_consent) == (True, False)
    assert saved.preferred_channels == ["email"]
    assert saved.topics["offers"] is False and saved.topics["order_updates"] is True
    assert (saved.quiet_hours_start, saved.quiet_hours_end) == ("20:00", "09:30")
    assert 13 <= (saved.paused_until - utcnow()).days <= 14
    with sessions() as session:
        sources = {r.source for r in session.scalars(select(ConsentRecord).where(ConsentRecord.contact_id == "c-1"))}
    assert sources == {"preference_center"}
    page = await center.get(response.headers["location"])
    assert "Saved." in page.text and 'value="20:00"' in page.text
    assert re.search(r'value="email" checked', page.text)


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [("20:00", "", "Give both times, or neither."), ("25:99", "07:00", "Write each time as HH:MM, for example 21:00."),
     ("8 pm", "7 am", "Write each time as HH:MM, for example 21:00.")],
)  # fmt: skip
async def test_a_quiet_hours_mistake_is_refused_and_nothing_is_stored(center, sessions, start, end, message):
    before = prefs(sessions)
    response = await center.post(
        f"/u/{center.links.token('c-1', version=0)}",
        data={**FORM, "consent": ["email", "sms"], "quiet_start": start, "quiet_end": end},
    )
    assert response.status_code == 422
    assert f'role="alert">{message}' in response.text
    after = prefs(sessions)
    assert (after.quiet_hours_start, after.updated_at) == (before.quiet_hours_start, before.updated_at)


ONE_CLICK_BODIES = {
    "multipart": multipart(("List-Unsubscribe", "One-Click")),
    "multipart-with-extra-field": multipart(("List-Unsubscribe", "One-Click"), ("mailbox", "example")),
    "urlencoded": {"content": "List-Unsubscribe=One-Click", "headers": URLENCODED},
    "urlencoded-with-extra-field": {"content": "List-Unsubscribe=One-Click&source=mail-app", "headers": URLENCODED},
    "urlencoded-without-content-type": {"content": "List-Unsubscribe=One-Click"},
    "without-content-type-and-not-utf-8": {"content": b"List-Unsubscribe=One-Click&x=\xff"},
    "text-plain": {"content": "List-Unsubscribe=One-Click", "headers": {"Content-Type": "text/plain"}},
    "multipart-field-name-in-lower-case": multipart(("list-unsubscribe", "one-click")),
}


@pytest.mark.parametrize("body", ONE_CLICK_BODIES.values(), ids=ONE_CLICK_BODIES.keys())
async def test_one_click_in_any_form_leaves_the_topic_and_nothing_else(center, sessions, chosen, body):
    response = await center.post(f"/u/{center.links.token('c-1', 'offers', version=0)}", **body)
    assert response.status_code == 200
    assert "You will no longer receive Offers messages." in response.text
    assert "set-cookie" not in response.headers
    after = choices(sessions)
    assert after.pop("topics") == {"tips": False, "offers": False}
    chosen.pop("topics")
    assert {k: v for k, v in after.items() if k != "updated_at"} == {
        k: v for k, v in chosen.items() if k != "updated_at"
    }  # transactional email, SMS, quiet hours and the preferred channel stay as they were
    assert consent_records(sessions) == [(None, "offers", False, "one_click")]


async def test_multipart_one_click_without_a_topic_unsubscribes_from_all_marketing_only(center, sessions, chosen):
    response = await center.post(f"/u/{center.links.token('c-1', version=0)}", **ONE_CLICK_BODIES["multipart"])
    assert response.status_code == 200
    after = choices(sessions)
    assert after["marketing_consent"] is False
    assert (after["email_consent"], after["sms_consent"], after["topics"]) == (True, True, {"tips": False})
    assert consent_records(sessions) == [(None, "*", False, "one_click")]


UNREADABLE_POSTS = {
    "empty": {"content": b""},
    "empty-urlencoded": {"content": b"", "headers": URLENCODED},
    "empty-multipart": multipart(),
    "unknown-fields": {"content": "consent=email&topic=offers", "headers": URLENCODED},
    "unknown-action": {"content": "action=delete_everything", "headers": URLENCODED},
    "save-without-the-rest-of-the-form": {"content": "action=save", "headers": URLENCODED},
    "save-in-a-body-that-is-not-a-form": {
        "content": "action=save&preferred=&quiet_start=&quiet_end=&pause_weeks=0",
        "headers": {"Content-Type": "text/plain"},
    },
    "json": {"json": {"List-Unsubscribe": "One-Click"}},
    "broken-multipart": {
        "content": b"--nope\r\nnot a part",
        "headers": {"Content-Type": "multipart/form-data; boundary=other"},
    },
    "multipart-with-a-file": {
        "files": {"attachment": ("a.txt", b"hello")},
        "data": {"action": "save"},
    },
}


@pytest.mark.parametrize("body", UNREADABLE_POSTS.values(), ids=UNREADABLE_POSTS.keys())
async def test_a_post_that_is_neither_one_click_nor_the_form_is_a_400_and_changes_nothing(
    center, sessions, chosen, body
):
    token = center.links.token("c-1", "offers", version=0)
    response = await center.post(f"/u/{token}", **body)
    assert response.status_code == 400
    assert "Nothing was changed." in response.text
    assert f'href="/u/{token}"' in response.text  # the way to the real form
    assert choices(sessions) == chosen
    assert consent_records(sessions) == []


async def test_a_contact_with_many_topics_can_still_save_the_form(center, sessions):
    with sessions.begin() as session:
        session.get(Preferences, "c-1").topics = {f"topic_{n}": True for n in range(60)}
    form = {**FORM, "consent": ["email"], "topic": [f"topic_{n}" for n in range(59)]}  # the last one unticked
    response = await center.post(f"/u/{center.links.token('c-1', version=0)}", data=form)
    assert response.status_code == 303
    assert prefs(sessions).topics["topic_59"] is False and prefs(sessions).topics["topic_0"] is True


def old_link(center, contact_id="c-1", topic=None, days=91):
    return center.links.token(contact_id, topic, issued_at=utcnow() - timedelta(days=days), version=0)


SMS_ON = {**FORM, "consent": ["email", "sms"]}


async def test_a_fresh_link_turns_things_on_and_offers_no_new_link(center, sessions):
    with sessions.begin() as session:
        session.get(Contact, "c-1").created_at = utcnow() - timedelta(days=365)
    token = center.links.token("c-1", issued_at=utcnow() - timedelta(days=89), version=0)
    page = await center.get(f"/u/{token}")
    assert 'value="send_link"' not in page.text
    with sessions.begin() as session:
        session.get(Preferences, "c-1").sms_consent = False
    response = await center.post(f"/u/{token}", data=SMS_ON)
    assert response.status_code == 303 and prefs(sessions).sms_consent is True


@pytest.mark.parametrize("made", ["91 days ago", "before links carried their age"])
async def test_an_old_link_cannot_turn_anything_on_and_saves_nothing(center, sessions, made):
    token = old_link(center) if made == "91 days ago" else legacy_link_token(center.secret, "c-1")
    with sessions.begin() as session:
        session.get(Preferences, "c-1").sms_consent = False
    before = choices(sessions)
    page = await center.get(f"/u/{token}")
    assert "can only turn things off" in page.text and 'value="send_link"' in page.text
    # SMS on and email off: nothing of it is saved, not even the half that turns something off
    response = await center.post(f"/u/{token}", data={**SMS_ON, "consent": ["sms"]})
    assert response.status_code == 403 and "Nothing was saved" in response.text
    assert choices(sessions) == before and consent_records(sessions) == []


async def test_an_old_link_still_turns_things_off(center, sessions, chosen):
    token = old_link(center, days=400)
    form = {**FORM, "consent": ["email"], "preferred": "", "quiet_start": "20:00", "quiet_end": "09:00"}
    response = await center.post(f"/u/{token}", data=form)
    assert response.status_code == 303
    saved = prefs(sessions)
    assert (saved.sms_consent, saved.quiet_hours_start, saved.quiet_hours_end) == (False, "20:00", "09:00")


@pytest.mark.parametrize("made", ["years ago", "before links carried their age"])
async def test_any_old_link_unsubscribes_and_its_manage_link_is_no_fresher(center, sessions, made):
    if made == "years ago":
        token = old_link(center, topic="offers", days=3650)
    else:
        token = legacy_link_token(center.secret, "c-1", "offers")
    with sessions.begin() as session:
        session.get(Preferences, "c-1").sms_consent = False
    response = await center.post(f"/u/{token}", content="List-Unsubscribe=One-Click")
    assert response.status_code == 200 and prefs(sessions).topics == {"offers": False}
    manage = re.search(r'href="(/u/[^"]+)"', response.text).group(1)
    link = center.links.read(manage.removeprefix("/u/"))
    assert link.topic is None and not link.may_grant(0, utcnow() - timedelta(days=4000), utcnow())
    assert (await center.post(manage, data=SMS_ON)).status_code == 403


async def test_a_new_address_retires_the_links_sent_to_the_old_one(center, sessions):
    token = center.links.token("c-1", version=0)  # fresh, for ada@example.com
    with sessions.begin() as session:
        moved = ContactInput(id="c-1", email="grace@example.com")
        write_contacts(session, [moved], source="api", address_key=AddressKey("k" * 32))
    with sessions.begin() as session:
        session.get(Preferences, "c-1").sms_consent = False
    assert (await center.post(f"/u/{token}", data=SMS_ON)).status_code == 403
    with sessions() as session:
        version = session.get(Contact, "c-1").links_version
    fresh = center.links.token("c-1", version=version)
    assert (await center.post(f"/u/{fresh}", data=SMS_ON)).status_code == 303


async def test_an_old_link_asks_for_a_fresh_one_at_most_once_a_day(center, sessions):
    token = old_link(center)
    first = await center.post(f"/u/{token}", data={"action": "send_link"})
    assert first.status_code == 200 and "We are sending a fresh link" in first.text
    with sessions() as session:
        asked = session.scalars(select(Event).where(Event.name == "preference_link_requested")).all()
    assert [e.contact_id for e in asked] == ["c-1"]
    again = await center.post(f"/u/{old_link(center, days=200)}", data={"action": "send_link"})
    assert "already sent you a fresh link today" in again.text


async def test_a_revoked_link_cannot_have_a_fresh_one_sent(center, sessions):
    """A forwarded email's link, once revoked, cannot make carecast write to the contact."""
    token = old_link(center)
    with sessions.begin() as session:
        revoke_links(session, "c-1")
    answer = await center.post(f"/u/{token}", data={"action": "send_link"})
    assert answer.status_code == 403 and "This link was replaced" in answer.text
    with sessions() as session:
        assert session.scalars(select(Event).where(Event.name == "preference_link_requested")).all() == []


async def test_with_no_campaign_to_send_it_the_page_says_no_fresh_link_can_come(center, sessions):
    with sessions.begin() as session:
        control_campaign(session, "preference_link", "stop")
    answer = await center.post(f"/u/{old_link(center)}", data={"action": "send_link"})
    assert answer.status_code == 200 and "We cannot send a fresh link just now" in answer.text


async def test_a_revoked_links_page_offers_no_fresh_link(center, sessions):
    token = old_link(center)
    with sessions.begin() as session:
        revoke_links(session, "c-1")
    page = await center.get(f"/u/{token}")
    assert 'value="send_link"' not in page.text and "This link was replaced" in page.text


async def test_a_link_sent_to_a_forgotten_contact_of_the_same_id_grants_nothing(center, sessions):
    token = center.links.token("c-1", issued_at=utcnow() - timedelta(days=2), version=0)
    with sessions.begin() as session:  # c-1 was forgotten, then created anew yesterday
        contact = session.get(Contact, "c-1")
        contact.created_at = utcnow() - timedelta(days=1)
        session.get(Preferences, "c-1").sms_consent = False
    assert (await center.post(f"/u/{token}", data=SMS_ON)).status_code == 403
