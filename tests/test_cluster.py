"""carecast as a cluster runs it: the API, two journey workers and one broadcast worker, each a process of
its own, on a real dev server, PostgreSQL and the fake SendGrid. Events arrive over HTTP while a broadcast is
in flight; a journey worker and the broadcast worker are killed (SIGKILL) in the middle. Counted at the fake
and in the store (bench/faults.py's tally): nothing lost, no offer twice, and a confirmation twice only where
the kill left carecast unable to know whether the first copy went out.
"""

import asyncio
import time
import uuid
from dataclasses import replace

import httpx
import pytest
from sqlalchemy import func, select

from bench import events_http
from bench.faults import tally
from bench.harness import WorkerPool, add_contacts, api_process, free_port, worker_environment
from carecast.broadcasts import start_broadcast
from carecast.campaign.load import load_campaign
from carecast.fakes.server import FakeProviders
from carecast.store.models import Delivery
from tests.conftest import POSTGRES_URL
from tests.factories import add_contact, deploy, pollers

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not POSTGRES_URL,
        reason="workers on several processes share the store over the network, as PostgreSQL serves it; SQLite is "
        "one file for one machine's processes (CI runs this with CARECAST_TEST_POSTGRES_URL)",
    ),
]

CAMPAIGNS = events_http.CAMPAIGNS | {
    # Offers go at 800 a second (confirmations have their own 200): the broadcast takes 5 s, and is sending at the kill.
    "policy.yaml": "timezone: UTC\nsend_rates: {email: 1000}\nreserved_for_care: 20%\n",
}
TEMPLATES = events_http.TEMPLATES
AUDIENCE = 4000
ORDERS = 150
RATE = 30  # events a second
API_KEY = "cluster-api-key-" + "k" * 32


def offers_sent(sessions) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).where(Delivery.campaign_id == "offer", Delivery.status == "sent"))


def confirmations(sessions) -> dict[str, int]:
    """How many confirmations each order's journey has sent."""
    with sessions() as session:
        rows = session.execute(
            select(Delivery.workflow_id, func.count())
            .where(Delivery.campaign_id == "confirm", Delivery.status == "sent")
            .group_by(Delivery.workflow_id)
        ).all()
    return dict(rows)


async def test_a_killed_worker_loses_nothing_while_events_and_a_broadcast_share_the_cluster(
    dev_server_env, settings, database_url, engine, sessions, tmp_path
):
    folder = tmp_path / "world"
    (folder / "campaigns").mkdir(parents=True)
    (folder / "templates").mkdir()
    for name, text in CAMPAIGNS.items():
        (folder / "campaigns" / name).write_text(text)
    for name, text in TEMPLATES.items():
        (folder / "templates" / name).write_text(text)
    run = uuid.uuid4().hex[:6]  # the dev server is the whole session's: ids of this run's own
    settings = replace(
        settings, campaigns_dir=folder / "campaigns", templates_dir=folder / "templates", task_queue=f"cluster-{run}"
    )
    with sessions.begin() as session:
        deploy(
            session, settings.templates_dir, *(settings.campaigns_dir / name for name in ("confirm.yaml", "offer.yaml"))
        )
        for n in range(10):
            add_contact(session, f"buyer-{n}", email=f"buyer{n}@example.com", attributes={"wants": False})
    add_contacts(sessions, AUDIENCE, {"wants": True})
    client = dev_server_env.client
    port = free_port()
    with FakeProviders(callbacks=False) as fakes:
        address = client.service_client.config.target_host
        env = worker_environment(settings, database_url, address, fakes.url) | {"CARECAST_API_KEY": API_KEY}
        with (
            WorkerPool(env, 2, queues="journeys") as journeys,
            WorkerPool(env, 1, queues="broadcasts") as pages,
            api_process(env, port),
        ):
            deadline = time.monotonic() + 60
            while not (
                await pollers(client, settings.task_queue) == set(journeys.pids())
                and await pollers(client, settings.broadcast_task_queue) == set(pages.pids())
            ):
                assert time.monotonic() < deadline, "the workers did not all poll their own queue, and only it"
                await asyncio.sleep(0.2)
            offer = load_campaign(settings.campaigns_dir / "offer.yaml")
            broadcast_id = await start_broadcast(client, settings.broadcast_task_queue, offer, 1, run)

            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
                for n in range(ORDERS):
                    event = {
                        "event_id": f"order-{run}-{n}", "contact_id": f"buyer-{n % 10}", "name": "order_placed",
                        "occurred_at": "2026-12-07T09:00:00Z", "data": {"order_id": f"A-{run}-{n}"},
                    }  # fmt: skip
                    response = await http.post("/v1/events", json=event, headers={"Authorization": f"Bearer {API_KEY}"})
                    assert response.status_code == 200, response.text
                    if n == ORDERS // 3:
                        journeys.kill_one(replace=False)  # one journey worker is left to carry on alone
                        pages.kill_one()  # the only broadcast worker: a new one takes its place
                        offered_at_kill = offers_sent(sessions)
                    await asyncio.sleep(1 / RATE)
            assert len(journeys.pids()) == 1
            state = await asyncio.wait_for(client.get_workflow_handle(broadcast_id).result(), 300)
            deadline = time.monotonic() + 180  # a delivery the killed worker held is retried after its 1-minute timeout
            while len(confirmations(sessions)) < ORDERS:
                assert time.monotonic() < deadline, f"{len(confirmations(sessions))} of {ORDERS} orders confirmed"
                await asyncio.sleep(0.5)

    assert 0 < offered_at_kill < AUDIENCE  # the kill landed in the middle of the broadcast
    confirmed = confirmations(sessions)
    assert sorted(confirmed) == sorted(f"journey/confirm/buyer-{n % 10}/A-{run}-{n}" for n in range(ORDERS))
    assert set(confirmed.values()) == {1}
    # A page killed mid-hand-over leaves offers carecast cannot know went out: never sent twice, they are
    # "uncertain" (SendGrid, unlike the outbox, would deliver a second copy).
    counters = state["counters"]
    assert counters["sent"] + counters["uncertain"] == counters["audience"] == AUDIENCE
    counted = tally(sessions, fakes, {"marketing": AUDIENCE, "transactional": ORDERS, "care": 0})
    marketing, transactional = counted["marketing"], counted["transactional"]
    assert (marketing.more, marketing.lost, marketing.disagreements) == (0, 0, [])
    assert marketing.once + marketing.not_sent == AUDIENCE and marketing.not_sent <= marketing.uncertain
    assert (transactional.lost, transactional.disagreements) == (0, [])
    assert transactional.once + transactional.more == ORDERS and transactional.more <= transactional.doubted
    assert not fakes.invalid
