"""POST /v1/events: stored once, journeys started once, clear errors, nothing stored on error."""

from dataclasses import replace

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select
from temporalio.testing import WorkflowEnvironment

from carecast.api.app import create_app
from carecast.store.models import Contact, Enrolment, Event
from carecast.temporal import DATA_CONVERTER, register_search_attributes
from tests.conftest import BIN
from tests.factories import add_contact, deploy
from tests.skipping import terminate_running

pytestmark = pytest.mark.store

KEY = "events-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
async def own_test_server():
    """A test server of this module's own: journeys started here have no worker, and on a shared
    server their pending tasks would keep it from skipping time for other tests."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(BIN / "temporal-test-server"), data_converter=DATA_CONVERTER
    )
    await register_search_attributes(env.client)
    yield env
    await env.shutdown()


@pytest.fixture
async def api(settings, engine, sessions, own_test_server):
    time_skipping_env = own_test_server
    with sessions.begin() as session:
        deploy(session, settings.templates_dir, settings.campaigns_dir / "order_confirmation.yaml")

    async def temporal():
        return time_skipping_env.client

    app = create_app(replace(settings, api_key=KEY, task_queue="api-events-unpolled"), engine=engine, temporal=temporal)
    started: list[str] = []

    async def record_started(response: httpx.Response) -> None:
        await response.aread()
        if response.status_code == 200 and response.request.url.path == "/v1/events":
            started.extend(response.json()["started"])

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://carecast", event_hooks={"response": [record_started]}
    ) as client:
        yield client
    await terminate_running(time_skipping_env.client, started)


def order(event_id, contact_id="c-1", **extra):
    return {
        "event_id": event_id, "contact_id": contact_id, "name": "order_placed",
        "occurred_at": "2026-11-25T09:00:00Z", "data": {"order_id": f"A-{event_id}", "total": "$12"}, **extra,
    }  # fmt: skip


def events(sessions):
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(Event))


async def test_an_event_starts_its_journey_and_a_repeat_is_a_duplicate(api, sessions, event_suffix):
    with sessions.begin() as session:
        add_contact(session)
    first = await api.post("/v1/events", json=order(event_suffix), headers=AUTH)
    again = await api.post("/v1/events", json=order(event_suffix), headers=AUTH)
    assert first.status_code == again.status_code == 200
    assert first.json()["started"] == [f"journey/order_confirmation/c-1/A-{event_suffix}"]
    assert (first.json()["duplicate"], again.json()["duplicate"]) == (False, True)
    assert again.json()["started"] == [] and again.json()["already_running"] == first.json()["started"]
    assert events(sessions) == 1


async def test_an_unknown_contact_is_a_404_and_nothing_is_stored(api, sessions, event_suffix):
    response = await api.post("/v1/events", json=order(event_suffix, contact_id="ghost"), headers=AUTH)
    assert response.status_code == 404
    assert "no contact with id 'ghost'" in response.json()["detail"]
    assert events(sessions) == 0


async def test_the_request_may_create_the_contact(api, sessions, event_suffix):
    body = order(event_suffix, contact_id="c-new", create_contact={"email": "new@example.com"})
    response = await api.post("/v1/events", json=body, headers=AUTH)
    assert response.status_code == 200
    with sessions() as session:
        assert session.get(Contact, "c-new").email == "new@example.com"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"occurred_at": "2026-11-25T09:00:00"}, ["body", "occurred_at"]),  # no time zone
        ({"name": "Order Placed"}, ["body", "name"]),
        ({"contact_id": ""}, ["body", "contact_id"]),
        ({"event_id": None}, ["body", "event_id"]),
        ({"extra": 1}, ["body", "extra"]),
    ],
)
async def test_an_invalid_body_is_a_422_naming_the_field(api, sessions, change, field):
    response = await api.post("/v1/events", json={**order("x"), **change}, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == field
    assert events(sessions) == 0


async def test_events_need_the_api_key(api, sessions):
    response = await api.post("/v1/events", json=order("x"), headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert events(sessions) == 0


@pytest.fixture
def event_suffix():
    import uuid

    return uuid.uuid4().hex[:8]


async def test_a_stage_set_through_the_contacts_api_starts_that_stage_journey(api, sessions, settings):
    with sessions.begin() as session:
        deploy(session, settings.templates_dir, settings.campaigns_dir / "win_back.yaml")
    body = {"email": "ola@example.com", "lifecycle_stage": "lapsed", "attributes": {"first_name": "Ola"}}
    response = await api.put("/v1/contacts/c-lapsed", json=body, headers=AUTH)
    assert response.status_code == 200
    with sessions() as session:
        announced = session.execute(select(Event.name, Event.data).where(Event.contact_id == "c-lapsed")).all()
        [journey] = session.scalars(select(Enrolment.workflow_id).where(Enrolment.contact_id == "c-lapsed")).all()
    assert announced == [("stage_entered", {"stage": "lapsed"})]
    assert journey.startswith("journey/win_back/c-lapsed/stage_entered.lapsed.")


async def test_the_api_counts_events_at_metrics_for_prometheus_behind_the_key(api, sessions, event_suffix):
    def recorded() -> float:
        return REGISTRY.get_sample_value("carecast_api_events_total", {"result": "recorded"}) or 0

    with sessions.begin() as session:
        add_contact(session)
    before = recorded()
    assert (await api.post("/v1/events", json=order(f"m{event_suffix}"), headers=AUTH)).status_code == 200
    assert recorded() == before + 1
    assert (await api.get("/metrics")).status_code == 401
    scraped = await api.get("/metrics", headers=AUTH)
    assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
    assert f'carecast_api_events_total{{result="recorded"}} {before + 1}' in scraped.text
