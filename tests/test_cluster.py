"""carecast as a cluster runs it: the API, two journey workers and one broadcast worker, each a process of
its own, on a real dev server and PostgreSQL. Events arrive over HTTP while a broadcast is in flight; a
journey worker and the broadcast worker are killed (SIGKILL) in the middle, and nothing is lost or sent twice.
"""

import asyncio
import time
import uuid
from dataclasses import replace

import httpx
import pytest
from sqlalchemy import func, select
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

from bench.harness import WorkerPool, add_contacts, api_process, free_port, worker_environment
from carecast.broadcasts import start_broadcast
from carecast.campaign.load import load_campaign
from carecast.store.models import Delivery
from tests.conftest import POSTGRES_URL
from tests.factories import add_contact, deploy

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not POSTGRES_URL,
        reason="workers on several processes share the store over the network, as PostgreSQL serves it; SQLite is "
        "one file for one machine's processes (CI runs this with CARECAST_TEST_POSTGRES_URL)",
    ),
]

CAMPAIGNS = {
    "confirm.yaml": (
        "id: confirm\nname: Confirm\ncategory: transactional\ntrigger: {event: order_placed}\n"
        "entry: {key: order_id, reentry: always}\n"
        "steps:\n  - {id: email, send: {template: confirm, channels: [email]}}\n"
    ),
    "offer.yaml": (
        "id: offer\nname: Offer\ncategory: marketing\ntopic: offers\naudience: {attributes.wants: {eq: true}}\n"
        "send: {template: offer, channels: [email]}\n"
    ),
}
TEMPLATES = {
    "confirm.email.subject.j2": "Order {{ event.order_id }} confirmed",
    "confirm.email.txt.j2": "Thank you for order {{ event.order_id }}.",
    "offer.email.subject.j2": "An offer",
    "offer.email.txt.j2": "Hello {{ contact.id }}. {{ unsubscribe_url }}",
}
AUDIENCE = 2000
ORDERS = 150
RATE = 30  # events a second
API_KEY = "cluster-api-key-" + "k" * 32


async def pollers(client, task_queue: str, kind: TaskQueueType) -> set[int]:
    """The process ids polling `task_queue` for `kind` tasks (a worker's identity is pid@host)."""
    described = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace, task_queue=TaskQueue(name=task_queue), task_queue_type=kind
        )
    )
    return {int(poller.identity.split("@")[0]) for poller in described.pollers}


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
    settings = replace(
        settings,
        campaigns_dir=folder / "campaigns",
        templates_dir=folder / "templates",
        task_queue=f"cluster-{uuid.uuid4().hex[:6]}",
    )
    with sessions.begin() as session:
        deploy(session, settings.templates_dir, *(settings.campaigns_dir / name for name in CAMPAIGNS))
        for n in range(10):
            add_contact(session, f"buyer-{n}", email=f"buyer{n}@example.com", attributes={"wants": False})
    add_contacts(sessions, AUDIENCE, {"wants": True})
    client = dev_server_env.client
    env = {
        **worker_environment(settings, database_url, client.service_client.config.target_host, None),
        "CARECAST_API_KEY": API_KEY,
    }
    port = free_port()
    with (
        WorkerPool(env, 2, queues="journeys") as journeys,
        WorkerPool(env, 1, queues="broadcasts") as pages,
        api_process(env, port),
    ):
        deadline = time.monotonic() + 60
        while not (
            await pollers(client, settings.task_queue, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY) == set(journeys.pids())
            and await pollers(client, settings.broadcast_task_queue, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)
            == set(pages.pids())
        ):
            assert time.monotonic() < deadline, "the workers did not all poll their own queue"
            await asyncio.sleep(0.2)
        offer = load_campaign(settings.campaigns_dir / "offer.yaml")
        broadcast_id = await start_broadcast(client, settings.broadcast_task_queue, offer, 1, "cluster")

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            for n in range(ORDERS):
                event = {
                    "event_id": f"order-{n}", "contact_id": f"buyer-{n % 10}", "name": "order_placed",
                    "occurred_at": "2026-12-07T09:00:00Z", "data": {"order_id": f"A-{n}"},
                }  # fmt: skip
                response = await http.post("/v1/events", json=event, headers={"Authorization": f"Bearer {API_KEY}"})
                assert response.status_code == 200, response.text
                if n == ORDERS // 3:
                    journeys.kill_one(replace=False)  # one journey worker is left to carry on alone
                    pages.kill_one()  # the only broadcast worker: a new one takes its place
                await asyncio.sleep(1 / RATE)
        assert len(journeys.pids()) == 1
        state = await asyncio.wait_for(client.get_workflow_handle(broadcast_id).result(), 300)
        deadline = time.monotonic() + 180  # a delivery the killed worker held is retried after its 1-minute timeout
        while len(confirmations(sessions)) < ORDERS:
            assert time.monotonic() < deadline, f"{len(confirmations(sessions))} of {ORDERS} orders confirmed"
            await asyncio.sleep(0.5)

    confirmed = confirmations(sessions)
    assert sorted(confirmed) == sorted(f"journey/confirm/buyer-{n % 10}/A-{n}" for n in range(ORDERS))
    assert set(confirmed.values()) == {1}
    assert state["counters"]["sent"] == AUDIENCE
    with sessions() as session:
        per_contact = session.execute(
            select(Delivery.contact_id, func.count())
            .where(Delivery.campaign_id == "offer")
            .group_by(Delivery.contact_id)
        ).all()
    assert len(per_contact) == AUDIENCE and {count for _, count in per_contact} == {1}
    assert len(list(settings.outbox_dir.glob("*.eml"))) == AUDIENCE + ORDERS
