"""Events into journeys: events per second turned into started journeys, and how long a
transactional message takes from its event to the outbox (p50 / p95).

    .venv/bin/python -m bench.journeys [--events 500] [--database-url URL]

The events go through `ingest_event`, the code behind POST /v1/events and
`carecast events send` (store once, check entry, record the enrolment, start the
journey). Each starts an order-confirmation journey whose email goes out at once.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import UTC, datetime

from sqlalchemy import select

from bench.harness import add_contacts, bench_world, peak_rss_mb
from carecast.deploy import deploy_files
from carecast.intake.ingest import ingest_event
from carecast.intake.record import IncomingEvent
from carecast.store.models import Delivery

CAMPAIGNS = {
    "confirm.yaml": (
        "id: confirm\nname: Confirm\ncategory: transactional\ntrigger: {event: order_placed}\n"
        "entry: {key: order_id, reentry: always}\n"
        "steps:\n  - {id: email, send: {template: confirm, channels: [email]}}\n"
    )
}
TEMPLATES = {
    "confirm.email.subject.j2": "Order {{ event.order_id }} confirmed",
    "confirm.email.txt.j2": "Hi {{ contact.attributes.first_name }}, thank you for order {{ event.order_id }}.",
}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--database-url")
    parser.add_argument("--provider", choices=["sendgrid", "outbox"], default="sendgrid")
    args = parser.parse_args()
    world = bench_world(args.database_url, CAMPAIGNS, TEMPLATES, args.provider)
    async with world as (client, settings, engine, sessions):
        add_contacts(sessions, args.events, {"first_name": "Ada"})
        with sessions.begin() as session:
            deploy_files(session, [settings.campaigns_dir / "confirm.yaml"], settings.templates_dir)
        sent_at: dict[str, float] = {}
        received: dict[str, float] = {}
        began, began_at = time.perf_counter(), time.time()
        for n in range(args.events):
            order = f"A-{n}"
            received[f"c-{n:07d}"] = time.time()
            event = IncomingEvent(f"e-{n}", f"c-{n:07d}", "order_placed", datetime.now(UTC), {"order_id": order})
            await ingest_event(client, sessions, settings.task_queue, event, settle_later=True)  # as the API does
        ingest_seconds = time.perf_counter() - began
        while len(sent_at) < args.events:
            with sessions() as session:
                for contact_id, updated in session.execute(
                    select(Delivery.contact_id, Delivery.updated_at).where(Delivery.status == "sent")
                ):
                    sent_at.setdefault(contact_id, updated.timestamp())
            await asyncio.sleep(0.1)
        latencies = sorted(sent_at[c] - received[c] for c in received)
    print(f"database            {engine.dialect.name}")
    print(f"events -> journeys  {args.events} in {ingest_seconds:.1f} s = {args.events / ingest_seconds:,.0f} events/s")
    last = max(sent_at.values()) - began_at
    print(f"all sent            {args.events} in {last:.1f} s = {args.events / last:,.0f} journeys/s (to the last)")
    p50 = statistics.median(latencies)
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    print(f"event -> outbox     p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms (sent rows' update time)")
    print(f"peak RSS            {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    asyncio.run(main())
