"""The same-shape baseline of bench/events_http.py: Temporal, the store and the provider, without carecast.

    python -m bench.baseline api --port PORT   # POST /v1/events: signal-with-start, as carecast's API starts journeys
    python -m bench.baseline worker            # the workflow and its one activity

Settings come from the environment bench/harness.py's `worker_environment` gives carecast
(CARECAST_DATABASE_URL, CARECAST_TEMPORAL_ADDRESS, CARECAST_TASK_QUEUE, SENDGRID_API_HOST).
The handler starts a minimal workflow with the event as its start signal; the workflow's
one activity does one database transaction (a row per event) and one POST to SendGrid's
Mail Send through the SDK carecast uses. What carecast spends beyond this is what it adds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import uvicorn
from sendgrid import SendGridAPIClient
from sqlalchemy import Column, DateTime, MetaData, String, Table, insert
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from bench.baseline_workflow import SEND_ACTIVITY, BaselineWorkflow
from carecast.store.db import make_engine

METADATA = MetaData()
SENDS = Table(
    "baseline_sends",
    METADATA,
    Column("event_id", String(128), primary_key=True),
    Column("contact_id", String(128)),
    Column("sent_at", DateTime(timezone=True)),
)
THREADS = 16  # as a carecast worker's activities


def api(port: int) -> None:
    env = os.environ
    temporal: list[Client] = []

    @asynccontextmanager
    async def lifespan(_app):
        temporal.append(await Client.connect(env["CARECAST_TEMPORAL_ADDRESS"]))
        yield

    async def events(request: Request) -> JSONResponse:
        event = await request.json()
        await temporal[0].start_workflow(
            BaselineWorkflow.run,
            id=f"baseline/{event['event_id']}",
            task_queue=env["CARECAST_TASK_QUEUE"],
            start_signal="event",
            start_signal_args=[event],
        )
        return JSONResponse({"started": True})

    app = Starlette(routes=[Route("/v1/events", events, methods=["POST"])], lifespan=lifespan)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


class Sender:
    def __init__(self) -> None:
        self.engine = make_engine(os.environ["CARECAST_DATABASE_URL"])
        self.sendgrid = SendGridAPIClient(api_key=os.environ["SENDGRID_API_KEY"], host=os.environ["SENDGRID_API_HOST"])

    @activity.defn(name=SEND_ACTIVITY)
    def send(self, event: dict) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                insert(SENDS).values(
                    event_id=event["event_id"], contact_id=event["contact_id"], sent_at=datetime.now(UTC)
                )
            )
        self.sendgrid.send(
            {
                "from": {"email": "shop@example.com"},
                "personalizations": [
                    {
                        "to": [{"email": f"{event['contact_id']}@example.com"}],
                        "custom_args": {"event_id": event["event_id"]},
                    }
                ],
                "subject": f"Order {event['data']['order_id']} confirmed",
                "content": [{"type": "text/plain", "value": f"Thank you for order {event['data']['order_id']}."}],
            }
        )


async def worker() -> None:
    client = await Client.connect(os.environ["CARECAST_TEMPORAL_ADDRESS"])
    with ThreadPoolExecutor(max_workers=THREADS) as executor:
        await Worker(
            client,
            task_queue=os.environ["CARECAST_TASK_QUEUE"],
            workflows=[BaselineWorkflow],
            activities=[Sender().send],
            activity_executor=executor,
            max_concurrent_activities=THREADS,
        ).run()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["api", "worker"])
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    if args.role == "api":
        api(args.port)
    else:
        asyncio.run(worker())


if __name__ == "__main__":
    main()
