"""Deliveries under faults: nothing lost, no marketing duplicate, and a transactional or care
duplicate only where carecast could not know whether the first copy went out.

    .venv/bin/python -m bench.faults [--contacts 20000] [--journeys 500] [--kills 5] [--database-url URL]

One run on one machine: a marketing broadcast to `--contacts` contacts and, at the same
time, a stream of `--journeys` journeys (half order confirmations, transactional; half
delivery apologies, care), each sending one email, through two `carecast worker`
processes, to the fake SendGrid (every request checked against the official description).
Meanwhile it injects:

- a SIGKILL of a worker, `--kills` times, each replaced by a new one;
- for the first `--chaos` seconds, 20 % of SendGrid requests accepted but answered after
  the client's timeout, 20 % answered 503, and a burst of 429s with Retry-After;
- a database fault: on SQLite, a writer that takes the write lock again and again for a
  second at a time, so every process waits on it; on PostgreSQL, every connection to the
  benchmark's database terminated (the machine's shared server, the benchmark's own
  scratch database: the server itself is not restarted);
- a restart of the file-backed Temporal dev server (SIGKILL, then started again on its file).

Then it counts, per category, what the fake accepted (by delivery id) and what the store
recorded, and checks them against each other. Lost: a message intended and not accounted
for — no row, a row still waiting, or a row `sent` that the fake never accepted. Doubted:
a message whose history has `uncertain` (no answer after the request went out) or a
resend after a crash mid-send. Targets: 0 lost, 0 marketing duplicates, transactional and
care duplicates no more than their doubted messages. The exit status says whether they held.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from sqlalchemy import insert, select, text
from temporalio.client import Client, WorkflowExecutionStatus

from bench.harness import WorkerPool, add_contacts, free_port, store_world, worker_environment
from carecast.broadcasts import deployed_broadcast, start_broadcast
from carecast.deploy import deploy_files
from carecast.dev import start_dev_server, stop_process
from carecast.fakes.recording import InjectedFailure
from carecast.fakes.server import FakeProviders
from carecast.intake.ingest import ingest_event
from carecast.intake.record import IncomingEvent
from carecast.store.db import make_sessionmaker
from carecast.store.models import Contact, Delivery, Preferences
from carecast.temporal import register_search_attributes

CAMPAIGNS = {
    "offer.yaml": (
        "id: offer\nname: Offer\ncategory: marketing\ntopic: offers\naudience: {attributes.wants: {eq: true}}\n"
        "send: {template: offer, channels: [email]}\n"
    ),
    "confirm.yaml": (
        "id: confirm\nname: Confirm\ncategory: transactional\ntrigger: {event: order_placed}\n"
        "entry: {key: order_id, reentry: always}\n"
        "steps:\n  - {id: email, send: {template: confirm, channels: [email]}}\n"
    ),
    "sorry.yaml": (
        "id: sorry\nname: Sorry\ncategory: care\ntrigger: {event: delivery_delayed}\n"
        "entry: {key: order_id, reentry: always}\n"
        "steps:\n  - {id: email, send: {template: sorry, channels: [email]}}\n"
    ),
}
TEMPLATES = {
    "offer.email.subject.j2": "An offer",
    "offer.email.txt.j2": "Hello {{ contact.id }}. {{ unsubscribe_url }}",
    "confirm.email.subject.j2": "Order {{ event.order_id }} confirmed",
    "confirm.email.txt.j2": "Thank you for order {{ event.order_id }}.",
    "sorry.email.subject.j2": "Order {{ event.order_id }} is late",
    "sorry.email.txt.j2": "We are sorry: order {{ event.order_id }} is late. {{ unsubscribe_url }}",
}
CATEGORIES = ("marketing", "transactional", "care")
PROVIDER_TIMEOUT = 2.0  # seconds; a late answer comes after LATE
LATE = 3.0
WAITING = ("reserved", "sending", "deferred")


@dataclass(frozen=True)
class Plan:
    """What the run sends and which faults it injects (the defaults: the full benchmark)."""

    contacts: int = 20_000
    journeys: int = 500
    stream_seconds: float = 30  # the journeys' events are spread over this long
    kills: int = 5
    chaos_seconds: float = 45  # late and refused answers, from the start
    late: float = 0.2
    unavailable: float = 0.2
    burst: bool = True
    database: bool = True
    temporal_restart: bool = True


@dataclass
class Chaos:
    """Decides, for each SendGrid request while it is on, whether it is answered late, refused, or served."""

    late: float = 0.2
    unavailable: float = 0.2
    on: bool = True
    rng: random.Random = field(default_factory=lambda: random.Random(13))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, provider: str) -> InjectedFailure | None:
        with self.lock:
            if not self.on:
                return None
            draw = self.rng.random()
        if draw < self.late:
            return InjectedFailure(202, delay=LATE)  # accepted, answered after the client gave up
        if draw < self.late + self.unavailable:
            return InjectedFailure(503)
        return None


@dataclass
class Tally:
    intended: int = 0
    once: int = 0
    more: int = 0  # messages accepted more than once
    extra_copies: int = 0
    not_sent: int = 0  # accounted for: skipped, failed, or uncertain with nothing accepted
    lost: int = 0
    uncertain: int = 0
    doubted: int = 0
    late_hits: int = 0  # messages a late answer hit
    failed: Counter = field(default_factory=Counter)
    disagreements: list[str] = field(default_factory=list)


def accepted_by_delivery(fakes: FakeProviders) -> tuple[Counter, set[int]]:
    """How often the fake accepted each delivery id, and the ids a late answer hit."""
    accepted, late = Counter(), set()
    for request in fakes.received_by("sendgrid", "/v3/mail/send"):
        if request.status != 202:
            continue
        body = request.body
        ids = [int(p["custom_args"]["delivery_id"]) for p in body["personalizations"] if "custom_args" in p]
        if not ids:
            ids = [int(body["custom_args"]["delivery_id"])]
        accepted.update(ids)
        if request.answered_after:
            late.update(ids)
    return accepted, late


def tally(sessions, fakes: FakeProviders, intended: dict[str, int]) -> dict[str, Tally]:
    accepted, late = accepted_by_delivery(fakes)
    tallies = {category: Tally(intended=intended[category]) for category in CATEGORIES}
    with sessions() as session:
        rows = session.execute(select(Delivery.id, Delivery.category, Delivery.status, Delivery.reason,
                                      Delivery.status_history)).all()  # fmt: skip
    seen = Counter()
    for delivery_id, category, status, reason, history in rows:
        t, copies = tallies[category], accepted.get(delivery_id, 0)
        seen[category] += 1
        doubted = any(e.get("status") == "uncertain" or e.get("resend") for e in history)
        t.doubted += doubted
        t.uncertain += status == "uncertain"
        t.late_hits += delivery_id in late
        if status == "failed":
            t.failed[reason] += 1
        if copies == 1:
            t.once += 1
        elif copies > 1:
            t.more += 1
            t.extra_copies += copies - 1
            if not doubted:
                steps = " > ".join(f"{e.get('status')}{':' + e['kind'] if e.get('kind') else ''}" for e in history)
                t.disagreements.append(f"delivery {delivery_id}: accepted {copies}x, not doubted: {steps}")
        elif status in WAITING or status == "sent":
            t.lost += 1
            t.disagreements.append(f"delivery {delivery_id}: {status} in the store, never accepted by the fake")
        else:
            t.not_sent += 1
        if copies and status not in ("sent", "uncertain"):
            t.disagreements.append(f"delivery {delivery_id}: accepted {copies}x by the fake, {status} in the store")
    for category, t in tallies.items():
        t.lost += max(t.intended - seen[category], 0)  # intended, and no row at all
    return tallies


def report(tallies: dict[str, Tally]) -> bool:
    print(f"{'category':<14}{'intended':>9}{'once':>8}{'more':>6}{'extra':>6}{'not sent':>9}{'lost':>6}"
          f"{'uncertain':>10}{'doubted':>8}{'late hits':>10}  failed (reason)")  # fmt: skip
    held = True
    for category, t in tallies.items():
        failed = ", ".join(f"{reason} {n}" for reason, n in t.failed.items()) or "-"
        print(f"{category:<14}{t.intended:>9}{t.once:>8}{t.more:>6}{t.extra_copies:>6}{t.not_sent:>9}{t.lost:>6}"
              f"{t.uncertain:>10}{t.doubted:>8}{t.late_hits:>10}  {failed}")  # fmt: skip
        for line in t.disagreements[:5]:
            print(f"    {line}")
        if t.lost or (category == "marketing" and t.more) or t.more > t.doubted:
            held = False
    print("targets             " + ("held" if held else "MISSED") + ": 0 lost, 0 marketing duplicates, "
          "transactional and care duplicates <= doubted")  # fmt: skip
    return held


class Faults:
    """The timeline of injected faults; each says what it did and when."""

    def __init__(self, began: float, workers: WorkerPool, fakes: FakeProviders, chaos: Chaos, engine) -> None:
        self.began, self.workers, self.fakes, self.chaos, self.engine = began, workers, fakes, chaos, engine
        self.temporal: tuple | None = None  # (process, settings) of the dev server

    def say(self, what: str) -> None:
        print(f"  {time.monotonic() - self.began:6.1f} s  {what}", flush=True)

    async def at(self, seconds: float, fault) -> None:
        await asyncio.sleep(max(seconds - (time.monotonic() - self.began), 0))
        await fault()

    async def kill_worker(self) -> None:
        self.say(f"SIGKILL worker {await asyncio.to_thread(self.workers.kill_one)}; a new one starts")

    async def rate_limit_burst(self) -> None:
        self.fakes.fail_next("sendgrid", 429, retry_after=2, times=10)
        self.say("SendGrid answers the next 10 requests 429, Retry-After: 2")

    async def end_chaos(self) -> None:
        with self.chaos.lock:
            self.chaos.on = False
        self.say("SendGrid answers in time again")

    async def database_fault(self) -> None:
        if self.engine.dialect.name == "postgresql":
            with self.engine.connect() as connection:
                ended = connection.execute(text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )).scalar()  # fmt: skip
            self.say(f"PostgreSQL: {ended} connections to the store terminated")
            return
        self.say("SQLite: a writer holds the write lock for 1 s at a time, 8 times")
        await asyncio.to_thread(self._hold_sqlite_lock, 8)

    def _hold_sqlite_lock(self, times: int) -> None:
        connection = sqlite3.connect(self.engine.url.database, timeout=30, isolation_level=None)
        try:
            for _ in range(times):
                connection.execute("BEGIN IMMEDIATE")
                time.sleep(1.0)
                connection.execute("COMMIT")
                time.sleep(0.2)
        finally:
            connection.close()

    async def restart_temporal(self) -> None:
        process, settings = self.temporal
        process.kill()
        process.wait()
        self.say("Temporal dev server SIGKILLed; starting it again on its file")
        process, _ = await start_dev_server(settings)
        self.temporal = (process, settings)
        self.say("Temporal dev server answers again")


async def stream_events(client: Client, sessions, task_queue: str, journeys: int, seconds: float) -> None:
    """Half order confirmations, half delivery apologies, spread over `seconds`."""
    for n in range(journeys):
        name = "order_placed" if n % 2 == 0 else "delivery_delayed"
        event = IncomingEvent(f"e-{n}", f"j-{n:05d}", name, datetime.now(UTC), {"order_id": f"A-{n}"})
        try:
            await ingest_event(client, sessions, task_queue, event, settle_later=True)
        except Exception as exc:  # Temporal restarting: the event is stored, the relay starts its journey
            print(f"  event {n}: {type(exc).__name__}; stored, left to the relay", flush=True)
        await asyncio.sleep(seconds / journeys)


def add_journey_contacts(sessions, count: int) -> None:
    now = datetime.now(UTC)
    ids = [f"j-{n:05d}" for n in range(count)]
    with sessions.begin() as session:
        session.execute(insert(Contact.__table__), [
            dict(id=i, email=f"{i}@example.com", timezone="UTC", attributes={"wants": False}, created_at=now,
                 updated_at=now) for i in ids
        ])  # fmt: skip
        session.execute(insert(Preferences.__table__), [
            dict(contact_id=i, email_consent=True, sms_consent=False, voice_consent=False, preferred_channels=[],
                 topics={}, send_windows=[], updated_at=now) for i in ids
        ])  # fmt: skip


async def settled(client: Client, sessions, broadcast_id: str, journeys: int) -> bool:
    if (await client.get_workflow_handle(broadcast_id).describe()).status == WorkflowExecutionStatus.RUNNING:
        return False
    with sessions() as session:
        rows = session.execute(
            select(Delivery.status, Delivery.retry_at).where(Delivery.workflow_id.not_like("broadcast/%"))
        ).all()
    return len(rows) >= journeys and not any(status in WAITING or retry_at for status, retry_at in rows)


async def run(plan: Plan, database_url: str | None, deadline: float = 900) -> tuple[bool, dict[str, Tally]]:
    """Whether the targets held, and the counts per category."""
    contacts, journeys = plan.contacts, plan.journeys
    chaos = Chaos(late=plan.late, unavailable=plan.unavailable)
    with (
        store_world(database_url, CAMPAIGNS, TEMPLATES) as (settings, engine, url),
        FakeProviders(callbacks=False) as fakes,
    ):
        fakes.journal.chaos = chaos
        port = free_port()
        settings = replace(settings, temporal_port=port, temporal_ui_port=free_port(),
                           temporal_address=f"127.0.0.1:{port}", sendgrid_api_key="SG.fake-key",
                           sendgrid_api_host=fakes.url, provider_timeout_seconds=PROVIDER_TIMEOUT)  # fmt: skip
        temporal, client = await start_dev_server(settings)
        sessions = make_sessionmaker(engine)
        try:
            await register_search_attributes(client)
            add_contacts(sessions, contacts, {"wants": True})
            add_journey_contacts(sessions, journeys)
            with sessions.begin() as session:
                deploy_files(session, sorted(settings.campaigns_dir.glob("*.yaml")), settings.templates_dir)
                campaign, version = deployed_broadcast(session, "offer")
            env = worker_environment(settings, url, settings.temporal_address, fakes.url)
            with WorkerPool(env, 2) as workers:
                began = time.monotonic()
                faults = Faults(began, workers, fakes, chaos, engine)
                faults.temporal = (temporal, settings)
                broadcast_id = await start_broadcast(client, settings.broadcast_task_queue, campaign, version, "faults")
                span = plan.stream_seconds
                faults.say(f"broadcast to {contacts:,} started; {journeys} journeys over {span:.0f} s; chaos on")
                timeline = [
                    faults.at(3 + n * (span * 4 / 3) / plan.kills, faults.kill_worker) for n in range(plan.kills)
                ]
                timeline.append(faults.at(plan.chaos_seconds, faults.end_chaos))
                if plan.burst:
                    timeline.append(faults.at(span / 5, faults.rate_limit_burst))
                if plan.database:
                    timeline.append(faults.at(span * 2 / 5, faults.database_fault))
                if plan.temporal_restart:
                    timeline.append(faults.at(span * 2 / 3, faults.restart_temporal))
                stream = stream_events(client, sessions, settings.task_queue, journeys, span)
                await asyncio.gather(stream, *timeline)
                while not await settled(client, sessions, broadcast_id, journeys):
                    if time.monotonic() - began > deadline:
                        faults.say(f"not settled after {deadline:.0f} s: what still waits counts as lost")
                        break
                    await asyncio.sleep(1)
                faults.say("settled")
                temporal = faults.temporal[0]
        finally:
            stop_process(temporal)
        invalid = fakes.invalid
        intended = {"marketing": contacts, "transactional": (journeys + 1) // 2, "care": journeys // 2}
        print(f"database            {engine.dialect.name}")
        print(f"requests to SendGrid {len(fakes.received)}, against its description: {len(invalid)} invalid")
        tallies = tally(sessions, fakes, intended)
        return report(tallies) and not invalid, tallies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--journeys", type=int, default=500)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--chaos", type=float, default=45, help="seconds of late, refused and failed answers")
    parser.add_argument("--database-url")
    args = parser.parse_args()
    plan = Plan(contacts=args.contacts, journeys=args.journeys, kills=args.kills, chaos_seconds=args.chaos)
    held, _ = asyncio.run(run(plan, args.database_url))
    sys.exit(0 if held else 1)


if __name__ == "__main__":
    main()
