"""Provider news applied per second: SendGrid's event webhook batches, in this process, without HTTP.

    .venv/bin/python -m bench.feedback [--deliveries 10000] [--database-url URL]

Stores a sent message for each of `--deliveries` contacts, then applies SendGrid event
batches of 500 as the webhook does (`apply_sendgrid_events`, one transaction a batch):
for each message `delivered`, two human opens and a machine open. Prints events per second
and this process's CPU per event; run it on two commits to compare them.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

from sqlalchemy import insert

from bench.harness import add_contacts, store_world
from carecast.feedback import apply_sendgrid_events
from carecast.store.db import make_sessionmaker
from carecast.store.models import Delivery

BATCH = 500


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--database-url", help="a PostgreSQL server; SQLite in a temporary folder by default")
    args = parser.parse_args()
    with store_world(args.database_url, {}, {}) as (_, engine, _url):
        sessions = make_sessionmaker(engine)
        add_contacts(sessions, args.deliveries, {})
        now = datetime.now(UTC)
        with sessions.begin() as session:
            session.execute(insert(Delivery.__table__), [
                dict(id=n + 1, idempotency_key=f"k-{n}", workflow_id="broadcast/news/1", campaign_id="news",
                     campaign_version=1, category="marketing", step_id="send", contact_id=f"c-{n:07d}",
                     channel="email", status="sent", status_history=[], sent_at=now, created_at=now, updated_at=now)
                for n in range(args.deliveries)
            ])  # fmt: skip
        events = [
            {"event": kind, "sg_event_id": f"{n}-{i}", "delivery_id": str(n + 1), "email": f"c-{n:07d}@example.com",
             "timestamp": int(now.timestamp()), **({"sg_machine_open": True} if i == 3 else {})}
            for n in range(args.deliveries) for i, kind in enumerate(("delivered", "open", "open", "open"))
        ]  # fmt: skip
        cpu, began = time.process_time(), time.perf_counter()
        for start in range(0, len(events), BATCH):
            with sessions.begin() as session:
                apply_sendgrid_events(session, events[start : start + BATCH], {})
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
        print(f"events              {len(events)} in {seconds:.1f} s = {len(events) / seconds:,.0f}/s")
        print(f"CPU, this process   {cpu:.1f} s = {cpu / len(events) * 1000:.2f} ms an event")


if __name__ == "__main__":
    main()
