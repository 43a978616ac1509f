"""GET|POST /u/{token}: the preference center, one-click unsubscribe, and what a bad link sees."""

import re
from dataclasses import replace

import httpx
import pytest
from sqlalchemy import select

from carecast.api.app import create_app
from carecast.deploy import deploy_versions
from carecast.spec.loader import campaign_files, load_campaign
from carecast.store.models import ConsentRecord, Preferences, utcnow
from tests.factories import add_contact

pytestmark = pytest.mark.store


async def unreachable_temporal():
    raise RuntimeError("not needed here")


@pytest.fixture
def center(settings, engine, sessions):
    settings = replace(settings, secret_key="preference secret")
    with sessions.begin() as session:
        deploy_versions(session, [load_campaign(p) for p in campaign_files(settings.campaigns_dir)])
        add_contact(session, "c-1", email="ada@example.com", phone="+14155550101", sms_consent=True)
        add_contact(session, "c-fr", email="zoe@example.fr", phone="+33612345678", locale="fr-FR")
    app = create_app(settings, engine=engine, temporal=unreachable_temporal)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://carecast")
    client.links = settings.link_signer()
    return client


def prefs(sessions, contact_id="c-1") -> Preferences:
    with sessions() as session:
        return session.get(Preferences, contact_id)


async def test_the_page_shows_channels_topics_quiet_hours_and_pause(center):
    page = await center.get(f"/u/{center.links.token('c-1')}")
    assert page.status_code == 200
    html = page.text
    assert '<html lang="en">' in html
    assert "Email to ada@example.com" in html and "Text messages to +14155550101" in html
    assert 'name="topic" value="offers"' in html and 'name="topic" value="order_updates"' in html
    assert 'type="time" name="quiet_start"' in html and "America/Los_Angeles" in html
    assert 'name="pause_weeks"' in html and 'name="no_marketing"' in html
    assert "<script" not in html  # works without JavaScript
    # every input has a label around it, every group a legend
    assert html.count("<fieldset") == html.count("<legend>")


async def test_the_page_speaks_the_contacts_language(center):
    page = await center.get(f"/u/{center.links.token('c-fr')}")
    assert '<html lang="fr">' in page.text
    assert "Comment pouvons-nous vous joindre ?" in page.text


@pytest.mark.parametrize(
    "token",
    ["nonsense", "eyJhIjoxfQ.AAAAAAAAAAAAAAAAAAAAAA", "", "..."],
    ids=["garbage", "forged-signature", "empty", "dots"],
)
async def test_a_bad_token_is_a_friendly_404(center, token):
    page = await center.get(f"/u/{token}")
    assert page.status_code == 404
    assert "This link does not work" in page.text


async def test_an_altered_token_is_refused_and_changes_nothing(center, sessions):
    genuine = center.links.token("c-1", "offers")
    payload, _, signature = genuine.partition(".")
    other = center.links.token("c-fr", "offers").partition(".")[0]
    response = await center.post(f"/u/{other}.{signature}", content="List-Unsubscribe=One-Click")
    assert response.status_code == 404
    assert prefs(sessions, "c-fr").topics == {}


async def test_one_click_unsubscribe_of_a_topic_needs_no_login_or_cookie(center, sessions):
    token = center.links.token("c-1", "offers")
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
    response = await center.post(f"/u/{center.links.token('c-1')}", content="List-Unsubscribe=One-Click")
    assert response.status_code == 200
    assert prefs(sessions).marketing_consent is False


async def test_saving_the_form_changes_the_store_with_a_consent_trail(center, sessions):
    token = center.links.token("c-1")
    form = {
        "action": "save",
        "consent": ["email"],  # SMS unticked
        "preferred": "email",
        "topic": ["order_updates"],  # offers unticked
        "quiet_start": "20:00",
        "quiet_end": "09:30",
        "pause_weeks": "2",
    }
    response = await center.post(f"/u/{token}", data=form)
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
        f"/u/{center.links.token('c-1')}",
        data={"action": "save", "consent": ["email", "sms"], "quiet_start": start, "quiet_end": end},
    )
    assert response.status_code == 422
    assert f'role="alert">{message}' in response.text
    after = prefs(sessions)
    assert (after.quiet_hours_start, after.updated_at) == (before.quiet_hours_start, before.updated_at)
