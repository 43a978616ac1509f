"""PUT /v1/contacts/{id}: bearer key, validation at the edge, a consent trail, nothing lost on error."""

from dataclasses import replace

import httpx
import pytest
from sqlalchemy import func, select

from carecast.api.app import create_app
from carecast.store.models import ConsentRecord, Contact, Preferences

pytestmark = pytest.mark.store

KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


async def unreachable_temporal():
    raise RuntimeError("not needed here")


@pytest.fixture
def api(settings, engine):
    app = create_app(replace(settings, api_key=KEY), engine=engine, temporal=unreachable_temporal)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://carecast")


async def test_creates_a_contact_with_normalised_fields_and_logs_consent(api, sessions):
    body = {
        "email": "Ada@EXAMPLE.com",
        "phone": "+1 (415) 555-0101",
        "timezone": "America/Los_Angeles",
        "attributes": {"first_name": "Ada"},
        "preferences": {"consent": {"sms": True}, "quiet_hours": {"start": "20:00", "end": "09:00"}},
        "consent_wording": "Text me about my orders. Reply STOP to opt out.",
    }
    response = await api.put("/v1/contacts/c-1042", json=body, headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {"id": "c-1042", "created": True, "changed": True}
    with sessions() as session:
        contact, prefs = session.get(Contact, "c-1042"), session.get(Preferences, "c-1042")
        [record] = session.scalars(select(ConsentRecord)).all()
    assert (contact.email, contact.phone) == ("Ada@example.com", "+14155550101")
    assert (prefs.sms_consent, prefs.quiet_hours_start, prefs.quiet_hours_end) == (True, "20:00", "09:00")
    assert (record.channel, record.granted, record.source) == ("sms", True, "api")
    assert record.wording == "Text me about my orders. Reply STOP to opt out."


async def test_the_same_body_twice_changes_nothing(api):
    body = {"email": "ada@example.com", "preferences": {"topics": {"offers": False}}}
    await api.put("/v1/contacts/c-1", json=body, headers=AUTH)
    again = await api.put("/v1/contacts/c-1", json=body, headers=AUTH)
    assert again.json() == {"id": "c-1", "created": False, "changed": False}


async def test_fields_left_out_stay_as_they_are(api, sessions):
    await api.put("/v1/contacts/c-1", json={"email": "ada@example.com", "locale": "fr-FR"}, headers=AUTH)
    await api.put("/v1/contacts/c-1", json={"locale": "en-GB"}, headers=AUTH)
    with sessions() as session:
        contact = session.get(Contact, "c-1")
    assert (contact.email, contact.locale) == ("ada@example.com", "en-GB")


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"phone": "415 555 0101"}, ["body", "phone"], "invalid phone '415 555 0101'"),
        ({"email": "ada at example"}, ["body", "email"], "invalid email 'ada at example'"),
        ({"timezone": "Paris"}, ["body", "timezone"], "unknown time zone 'Paris'"),
        ({"preferences": {"send_windows": ["every day"]}}, ["body", "preferences", "send_windows"], "not a cron"),
        ({"emial": "ada@example.com"}, ["body", "emial"], "Extra inputs are not permitted"),
    ],
)
async def test_invalid_input_is_a_422_naming_the_field_and_stores_nothing(api, sessions, body, field, message):
    response = await api.put("/v1/contacts/c-1", json=body, headers=AUTH)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == field and message in error["msg"]
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Contact)) == 0


async def test_an_invalid_contact_id_is_refused(api):
    response = await api.put("/v1/contacts/has space", json={}, headers=AUTH)
    assert response.status_code == 422


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}])
async def test_requests_without_the_key_are_refused(api, sessions, headers):
    response = await api.put("/v1/contacts/c-1", json={"email": "ada@example.com"}, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    with sessions() as session:
        assert session.get(Contact, "c-1") is None


async def test_a_server_without_a_key_refuses_writes_and_says_why(settings, engine):
    app = create_app(settings, engine=engine, temporal=unreachable_temporal)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://carecast") as api:
        response = await api.put("/v1/contacts/c-1", json={}, headers=AUTH)
    assert response.status_code == 503
    assert "set CARECAST_API_KEY" in response.json()["detail"]


@pytest.mark.parametrize("contact_id", ["ada@example.com", "+14155550101"])
async def test_an_email_address_or_a_phone_number_as_contact_id_is_refused_naming_the_rule(api, sessions, contact_id):
    response = await api.put(f"/v1/contacts/{contact_id}", json={}, headers=AUTH)
    assert response.status_code == 422 and "carry no personal data" in response.text
    event = {"event_id": "e-1", "contact_id": contact_id, "name": "signed_up", "occurred_at": "2026-12-07T10:00:00Z"}
    response = await api.post("/v1/events", json=event, headers=AUTH)
    assert response.status_code == 422 and "carry no personal data" in response.text
    assert (await api.put("/v1/contacts/4155550101", json={}, headers=AUTH)).status_code == 200  # numeric: fine
    with sessions() as session:
        assert session.scalars(select(Contact.id)).all() == ["4155550101"]
