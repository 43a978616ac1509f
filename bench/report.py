"""`carecast report` over a million deliveries, against plain GROUP BY counts of the same rows.

    .venv/bin/python -m bench.report --database-url postgresql://postgres@127.0.0.1:5432/test
        [--deliveries 1000000] [--repeats 5]

Builds, in a scratch database, the shipped win_back campaign with half as many entries as
deliveries (two sends each, a tenth held out), its deliveries with their outcomes, their
events (delivered, opens human and machine, clicks, unsubscribes, complaints, bounces,
deferrals) and goal events for a few percent of the entries; then times, interleaved and
repeated, the report (`campaign_report`, what `carecast report win_back` computes) and the
baseline: one `GROUP BY` count over each table the report reads, for the same campaign.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from bench.harness import scratch_postgres
from carecast.campaign.kpis import HouseGuardrails
from carecast.deploy import deploy_files
from carecast.reporting.campaign import campaign_report
from carecast.store.db import make_engine, make_sessionmaker
from carecast.store.migrate import upgrade
from carecast.store.models import Delivery, DeliveryEvent, Enrolment, Event
from carecast.store.writes import bulk_insert

ROOT = Path(__file__).resolve().parent.parent
CAMPAIGN = "win_back"
STEPS = ("offer", "reminder")
T0 = datetime(2026, 10, 1, tzinfo=UTC)
BATCH = 50_000
# What happened to a treated message: (status, share); then, for a delivered one, each kind of news and its share.
OUTCOMES = (("delivered", 0.88), ("bounced", 0.03), ("sent", 0.03), ("skipped", 0.06))
NEWS = (("opened", 0.30), ("machine_opened", 0.12), ("clicked", 0.05), ("unsubscribed", 0.004),
        ("complained", 0.0006))  # fmt: skip
# The columns every row of a kind has alike.
ENTRY = dict(entry_key="e", key_field=None, listens_to=[], trigger_event_id=None, ended_by="completed")
MESSAGE = dict(category="marketing", provider_message_id=None, segments=None, status_history=[], retry_at=None)


def build(sessions, entries: int, seed: int = 7) -> dict[str, int]:
    """The campaign's rows; returns how many of each were written."""
    rng = random.Random(seed)
    counts = {"enrolments": 0, "deliveries": 0, "delivery_events": 0, "events": 0}
    for start in range(0, entries, BATCH // len(STEPS)):
        stop = min(entries, start + BATCH // len(STEPS))
        enrolments, deliveries, news, goals = [], [], [], []
        for n in range(start, stop):
            contact, holdout, version = f"c-{n:07d}", rng.random() < 0.10, 1 + n % 2
            at = T0 + timedelta(seconds=rng.randrange(60 * 86400))
            journey = dict(campaign_id=CAMPAIGN, campaign_version=version, contact_id=contact,
                           workflow_id=f"journey/{CAMPAIGN}/{contact}/e")  # fmt: skip
            enrolments.append(journey | ENTRY | dict(id=n + 1, holdout=holdout, enrolled_at=at, started_at=at,
                              goal_by=at + timedelta(days=30), ended_at=at + timedelta(days=9)))  # fmt: skip
            if rng.random() < (0.04 if holdout else 0.06):
                goals.append(dict(event_id=f"order/{contact}", contact_id=contact, name="order_placed", data={},
                                  occurred_at=at + timedelta(days=rng.randrange(40)), received_at=at))  # fmt: skip
            for s, step in enumerate(STEPS):
                delivery_id = n * len(STEPS) + s + 1
                status = "holdout" if holdout else _pick(rng, OUTCOMES)
                sent = status not in ("holdout", "skipped")
                deliveries.append(journey | MESSAGE | dict(
                    id=delivery_id, idempotency_key=f"{contact}/{step}", step_id=step, template=step, status=status,
                    channel="email" if sent else None, reason="no_consent" if status == "skipped" else None,
                    provider="sendgrid" if sent else None, sent_at=at if sent else None, created_at=at,
                    updated_at=at))  # fmt: skip
                where = dict(delivery_id=delivery_id, campaign_id=CAMPAIGN, campaign_version=version, step_id=step,
                             channel="email", url=None, first=True, occurred_at=at)  # fmt: skip
                if rng.random() < 0.1:
                    news.append(where | dict(kind="deferred", reason="quiet_hours"))
                if status in ("delivered", "bounced"):
                    news.append(where | dict(kind=status, reason=None))
                if status == "delivered":
                    news += [where | dict(kind=kind, reason=None) for kind, share in NEWS if rng.random() < share]
        with sessions.begin() as session:
            for table, rows in ((Enrolment, enrolments), (Delivery, deliveries), (DeliveryEvent, news), (Event, goals)):
                bulk_insert(session, table.__table__, rows)
                counts[table.__tablename__] += len(rows)
    return counts


def _pick(rng: random.Random, shares) -> str:
    roll, total = rng.random(), 0.0
    for name, share in shares:
        total += share
        if roll < total:
            return name
    return shares[-1][0]


def baseline(session) -> None:
    """One plain GROUP BY count over each table the report reads, for the same campaign."""
    for table, column in ((Delivery, Delivery.status), (DeliveryEvent, DeliveryEvent.kind),
                          (Enrolment, Enrolment.holdout)):  # fmt: skip
        session.execute(select(column, func.count()).where(table.campaign_id == CAMPAIGN).group_by(column)).all()


def report(session) -> None:
    campaign_report(session, CAMPAIGN, HouseGuardrails())


def timings(sessions, runs: dict[str, Callable], repeats: int) -> Iterator[tuple[str, float]]:
    for _ in range(repeats):
        for name, run in runs.items():
            with sessions() as session:
                began = time.perf_counter()
                run(session)
                yield name, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True, help="a PostgreSQL server; a scratch database is made on it")
    parser.add_argument("--deliveries", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    url, drop = scratch_postgres(args.database_url)
    engine = make_engine(url)
    try:
        upgrade(engine)
        sessions = make_sessionmaker(engine)
        with sessions.begin() as session:
            deploy_files(session, [ROOT / "campaigns" / f"{CAMPAIGN}.yaml"], ROOT / "templates")
        began = time.perf_counter()
        counts = build(sessions, args.deliveries // len(STEPS))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE")
        print(f"built {counts} in {time.perf_counter() - began:.0f} s")
        seconds: dict[str, list[float]] = {"baseline": [], "report": []}
        for name, took in timings(sessions, {"baseline": baseline, "report": report}, args.repeats):
            seconds[name].append(took)
        base = statistics.median(seconds["baseline"])
        print(f"| what (median of {args.repeats}) | seconds | × baseline |\n|---|---:|---:|")
        for name, runs in seconds.items():
            print(f"| {name} | {statistics.median(runs):.2f} | {statistics.median(runs) / base:.2f} |")
    finally:
        engine.dispose()
        drop()


if __name__ == "__main__":
    main()
