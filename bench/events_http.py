"""Events over HTTP at fixed rates: what carecast sustains, how fast a confirmation goes out and what it costs,
against a baseline of the same shape measured in the same run.

    .venv/bin/python -m bench.events_http [--rates 5,10,20] [--seconds 30] [--workers 1]
        [--broadcast 100000] [--database-url URL]

One run, one store (SQLite by default, a scratch database on --database-url's PostgreSQL server):
a Temporal dev server, the fake SendGrid (in this process, checking every request against the
official description), `carecast api`, `--workers` `carecast worker --queues journeys` processes
and one `carecast worker --queues broadcasts`; beside them the baseline (bench/baseline.py: an
HTTP handler signal-with-starts a workflow whose one activity does one database transaction and
one POST to the same fake) with as many worker processes. At each rate, for `--seconds`, this
process POSTs /v1/events open loop (each event at its moment, whatever the earlier ones are
doing): an order for a contact of its own, whose confirmation journey sends one email. Then the
same to the baseline, so the two alternate and share whatever the machine is doing.

Per rate and system:
- accepted/s: events answered 200, over the phase; sent/s: emails the fake accepted, over the
  time from the first POST to the last email;
- the time from a POST to the fake accepting its email: p50, p95, p99; and how long the POSTs
  took to be answered (p95);
- CPU-ms per journey: the CPU time of the API, the workers, the Temporal dev server and (on
  PostgreSQL) the database server's processes over the phase, per email sent. This process (the
  load and the fake) is left out of both. And how busy the whole machine was (2 cores: near
  100 % every latency is mostly waiting for a core).
With --broadcast N (0: none) a last phase runs carecast at the lowest rate while a broadcast to
N contacts is in flight (the house rules' email rate, 500/s with 20 % kept for transactional and
care messages), and compares the confirmations' p95 with the idle one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
from sqlalchemy import select, text

from bench.baseline import METADATA
from bench.harness import (
    BIN,
    WorkerPool,
    add_contacts,
    api_process,
    free_port,
    store_world,
    wait_for_port,
    worker_environment,
)
from carecast.broadcasts import deployed_broadcast, start_broadcast
from carecast.deploy import deploy_files
from carecast.dev import start_dev_server, stop_process
from carecast.fakes.server import FakeProviders
from carecast.store.db import make_sessionmaker
from carecast.store.models import Delivery
from carecast.temporal import register_search_attributes

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
    "policy.yaml": "timezone: UTC\nsend_rates: {email: 500}\nreserved_for_care: 20%\n",
}
TEMPLATES = {
    "confirm.email.subject.j2": "Order {{ event.order_id }} confirmed",
    "confirm.email.txt.j2": "Thank you for order {{ event.order_id }}.",
    "offer.email.subject.j2": "An offer",
    "offer.email.txt.j2": "Hello {{ contact.id }}. {{ unsubscribe_url }}",
}
API_KEY = "bench-api-key-" + "k" * 32
TICKS = os.sysconf("SC_CLK_TCK")
SETTLE_SECONDS = 2.0  # after the last email, before the CPU is read (for both systems alike)
WARM_EVENTS = 20  # through each system before anything is timed
DRAIN_SECONDS = 120  # after the last POST, how long the emails may take before the rest count as missing


def cpu_seconds(pids: list[int], database_server: bool) -> float:
    """CPU time so far of `pids` and, for PostgreSQL, of every `postgres` process on this machine (the
    server's, with the backends it reaped): the machine's server, which nothing else uses meanwhile."""
    total = 0
    for pid in pids:
        total += _ticks(pid, children=False)
    if database_server:
        postgres = [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit() and
                    _comm(entry) == "postgres"]  # fmt: skip
        if not postgres:
            raise RuntimeError("no postgres process on this machine: the database's CPU cannot be counted")
        total += sum(_ticks(pid, children=True) for pid in postgres)
    return total / TICKS


def machine_ticks() -> tuple[int, int]:
    """(busy, all) CPU ticks of the whole machine so far, from /proc/stat."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return sum(fields) - idle, sum(fields)


def _comm(entry: Path) -> str:
    try:
        return (entry / "comm").read_text().strip()
    except OSError:
        return ""


def _ticks(pid: int, children: bool) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # ended in between
        return 0
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return utime + stime + (cutime + cstime if children else 0)


@dataclass
class System:
    name: str
    url: str
    pids: list[int]
    # The event number of each email the fake accepted, from this system's requests.
    numbers: Callable


@dataclass
class Phase:
    system: str
    rate: float
    posted: int
    accepted: int
    sent: int
    accepted_per_second: float
    sent_per_second: float
    latencies: list[float]
    cpu_ms_per_journey: float
    answers: list[float]  # how long each POST took to be answered
    machine_busy: float  # the share of the machine's CPU in use over the phase, everything on it counted

    def percentile(self, q: float, of: str = "latencies") -> float:
        ordered = sorted(getattr(self, of))
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")

    def line(self, cpu: bool = True) -> str:
        missing = f", {self.posted - self.sent} missing" if self.sent < self.posted else ""
        return (
            f"{self.system:<9} {self.rate:>5g}/s  accepted {self.accepted_per_second:6.1f}/s  "
            f"sent {self.sent_per_second:6.1f}/s  p50 {self.percentile(0.5):6.0f} ms  "
            f"p95 {self.percentile(0.95):6.0f} ms  p99 {self.percentile(0.99):6.0f} ms  "
            + (f"CPU {self.cpu_ms_per_journey:5.1f} ms/journey  " if cpu else "(CPU: the broadcast's too)  ")
            + f"answered p95 {self.percentile(0.95, 'answers'):5.0f} ms  machine {self.machine_busy:4.0%} busy"
            f"{missing}"
        )


class Load:
    """Open-loop POSTs of orders, numbered across the whole run so every event has a contact of its own."""

    def __init__(self, fakes: FakeProviders, database_server: bool) -> None:
        self.fakes, self.database_server = fakes, database_server
        self.next_number = 0
        self.posted_at: dict[int, float] = {}

    async def phase(self, system: System, rate: float, seconds: float) -> Phase:
        count = max(1, round(rate * seconds))
        numbers = range(self.next_number, self.next_number + count)
        self.next_number += count
        seen = len(self.fakes.received)
        cpu_before, machine_before = cpu_seconds(system.pids, self.database_server), machine_ticks()
        limits = httpx.Limits(max_connections=500, max_keepalive_connections=100)
        async with httpx.AsyncClient(base_url=system.url, timeout=120, limits=limits) as http:
            began = time.monotonic()
            posts = []
            for offset, number in enumerate(numbers):
                due = began + offset / rate
                if due > time.monotonic():
                    await asyncio.sleep(due - time.monotonic())
                # Timed from when it was due: a late start is the system's wait as much as a slow answer.
                posts.append(asyncio.create_task(self._post(http, number, due)))
            answers = await asyncio.gather(*posts)
            answered = time.monotonic() - began
        statuses = [status for status, _ in answers]
        arrived: dict[int, float] = {}
        deadline = time.monotonic() + DRAIN_SECONDS
        while True:
            received = self.fakes.received[seen:]
            for request, number in system.numbers(received):
                if number in numbers:
                    arrived.setdefault(number, request.at)
            if len(arrived) >= count or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.25)
        await asyncio.sleep(SETTLE_SECONDS)  # the journeys' last writes and closing after the last email
        cpu = cpu_seconds(system.pids, self.database_server) - cpu_before
        busy, ticks = (after - before for after, before in zip(machine_ticks(), machine_before, strict=True))
        latencies = [arrived[n] - self.posted_at[n] for n in arrived]
        span = (max(arrived.values()) - began) if arrived else float("nan")
        return Phase(
            system.name, rate, count, statuses.count(200), len(arrived), statuses.count(200) / answered,
            len(arrived) / span, latencies, cpu * 1000 / max(1, len(arrived)), [took for _, took in answers],
            busy / ticks,
        )  # fmt: skip

    async def _post(self, http: httpx.AsyncClient, number: int, due: float) -> tuple[int, float]:
        """The answer's status (0: none) and how long it took from when the POST was due."""
        event = {
            "event_id": f"e-{number}", "contact_id": f"j-{number:07d}", "name": "order_placed",
            "occurred_at": "2026-12-07T09:00:00Z", "data": {"order_id": f"A-{number}"},
        }  # fmt: skip
        self.posted_at[number] = due
        try:
            response = await http.post("/v1/events", json=event, headers={"Authorization": f"Bearer {API_KEY}"})
        except httpx.HTTPError:
            return 0, time.monotonic() - due
        return response.status_code, time.monotonic() - due


def accepted_mail(received):
    for request in received:
        if request.provider == "sendgrid" and request.path == "/v3/mail/send" and request.status == 202:
            yield request


def carecast_numbers(sessions):
    """Maps carecast's confirmations to their events: delivery id → journey id → order number."""
    orders: dict[int, int] = {}

    def numbers(received):
        wanted = []
        for request in accepted_mail(received):
            args = request.body.get("custom_args", {})
            if args.get("campaign_id") == "confirm":
                wanted.append((request, int(args["delivery_id"])))
        unknown = [delivery for _, delivery in wanted if delivery not in orders]
        if unknown:
            with sessions() as session:
                for delivery, workflow_id in session.execute(
                    select(Delivery.id, Delivery.workflow_id).where(Delivery.id.in_(unknown))
                ):
                    orders[delivery] = int(workflow_id.rsplit("/A-", 1)[1])
        return [(request, orders[delivery]) for request, delivery in wanted if delivery in orders]

    return numbers


def baseline_numbers(received):
    for request in accepted_mail(received):
        event_id = request.body["personalizations"][0].get("custom_args", {}).get("event_id")
        if event_id:
            yield request, int(event_id.removeprefix("e-"))


@contextmanager
def baseline_processes(env: dict[str, str], workers: int, port: int):
    env = {**env, "CARECAST_TASK_QUEUE": env["CARECAST_TASK_QUEUE"] + "-baseline"}
    python = str(BIN / "python")
    processes = [subprocess.Popen([python, "-m", "bench.baseline", "worker"], env=env) for _ in range(workers)]
    api = subprocess.Popen([python, "-m", "bench.baseline", "api", "--port", str(port)], env=env,
                           stderr=subprocess.PIPE)  # fmt: skip
    processes.append(api)
    try:
        wait_for_port(port, api, "the baseline's API")
        yield processes
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


async def warm(load: Load, systems: list[System]) -> None:
    """A few events through each, so imports, pools and caches are ready before anything is timed."""
    for system in systems:
        await load.phase(system, 10, WARM_EVENTS / 10)


async def run(args) -> None:
    rates = [float(rate) for rate in args.rates.split(",")]
    postgres = bool(args.database_url)
    with (
        store_world(args.database_url, CAMPAIGNS, TEMPLATES) as (settings, engine, url),
        FakeProviders(callbacks=False) as fakes,
        ExitStack() as stack,
    ):
        METADATA.create_all(engine)
        port = free_port()
        settings = replace(settings, temporal_port=port, temporal_ui_port=free_port(),
                           temporal_address=f"127.0.0.1:{port}")  # fmt: skip
        temporal, client = await start_dev_server(settings)
        stack.callback(stop_process, temporal)
        await register_search_attributes(client)
        sessions = make_sessionmaker(engine)
        # A contact per event: the warm-up, each rate for both systems, and the phase during the broadcast.
        events = 2 * WARM_EVENTS + 2 * sum(max(1, round(rate * args.seconds)) for rate in rates)
        events += max(1, round(min(rates) * args.seconds)) if args.broadcast else 0
        add_contacts(sessions, events, {"wants": False}, prefix="j")
        if args.broadcast:
            add_contacts(sessions, args.broadcast, {"wants": True}, prefix="b")
        if postgres:  # fresh statistics, and no autovacuum of the new rows during a timed phase
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(text("VACUUM ANALYZE"))
        with sessions.begin() as session:
            deploy_files(session, [settings.campaigns_dir / "confirm.yaml", settings.campaigns_dir / "offer.yaml"],
                         settings.templates_dir)  # fmt: skip
        env = {**worker_environment(settings, url, settings.temporal_address, fakes.url), "CARECAST_API_KEY": API_KEY}
        api_port, baseline_port = free_port(), free_port()
        journey_workers = stack.enter_context(WorkerPool(env, args.workers, queues="journeys"))
        broadcast_workers = stack.enter_context(WorkerPool(env, 1, queues="broadcasts"))
        api = stack.enter_context(api_process(env, api_port))
        baseline = stack.enter_context(baseline_processes(env, args.workers, baseline_port))
        shared = [temporal.pid]
        carecast = System("carecast", f"http://127.0.0.1:{api_port}",
                          [api.pid, *journey_workers.pids(), *broadcast_workers.pids(), *shared],
                          carecast_numbers(sessions))  # fmt: skip
        plain = System("baseline", f"http://127.0.0.1:{baseline_port}", [p.pid for p in baseline] + shared,
                       lambda received: list(baseline_numbers(received)))  # fmt: skip
        load = Load(fakes, postgres)
        await warm(load, [carecast, plain])
        print(f"database            {engine.dialect.name}; {args.workers} worker process(es) each; "
              f"{args.seconds:g} s a rate", flush=True)  # fmt: skip
        phases: list[tuple[Phase, Phase]] = []
        for turn, rate in enumerate(rates):
            # Taking turns at going first, so neither always meets the other's leftovers.
            measured = {}
            for system in (carecast, plain) if turn % 2 == 0 else (plain, carecast):
                measured[system.name] = await load.phase(system, rate, args.seconds)
                print(measured[system.name].line(), flush=True)
            phases.append((measured["carecast"], measured["baseline"]))
        print()
        for ours, theirs in phases:
            print(f"at {ours.rate:g}/s: sent {ours.sent_per_second / theirs.sent_per_second:.2f}× the baseline's rate, "
                  f"p95 {ours.percentile(0.95) / theirs.percentile(0.95):.2f}×, "
                  f"CPU {ours.cpu_ms_per_journey / theirs.cpu_ms_per_journey:.2f}×")  # fmt: skip
        if args.broadcast:
            await during_broadcast(load, carecast, client, sessions, fakes, settings, min(rates), args, phases)
        invalid = fakes.invalid
        print(f"requests to SendGrid {len(fakes.received):,}, against its description: {len(invalid)} invalid")


async def during_broadcast(load, carecast, client, sessions, fakes, settings, rate, args, phases) -> None:
    with sessions() as session:
        campaign, version = deployed_broadcast(session, "offer")
    workflow_id = await start_broadcast(client, settings.broadcast_task_queue, campaign, version, "bench")

    def offered() -> int:
        return sum(
            len(request.body["personalizations"])
            for request in accepted_mail(fakes.received)
            if request.body.get("custom_args", {}).get("campaign_id") == "offer"
        )

    deadline = time.monotonic() + 300
    while offered() < 2000:  # pages are going out
        if time.monotonic() > deadline:
            raise RuntimeError("the broadcast sent under 2,000 emails in 5 minutes; see the workers")
        await asyncio.sleep(0.25)
    before, began = offered(), time.monotonic()
    busy = await load.phase(carecast, rate, args.seconds)
    during, took = offered() - before, time.monotonic() - began
    handle = client.get_workflow_handle(workflow_id)
    still_running = (await handle.describe()).status.name == "RUNNING"
    await handle.terminate("the benchmark measured what it needed")
    print(busy.line(cpu=False).replace("carecast ", "carecast+", 1), flush=True)
    idle = next(ours for ours, _ in phases if ours.rate == rate)
    print(f"during a {args.broadcast:,}-contact broadcast ({during:,} of its emails went out in the phase's "
          f"{took:.0f} s, "
          f"{'still in flight at its end' if still_running else 'ENDED before the phase did'}): "
          f"p95 {busy.percentile(0.95):.0f} ms = {busy.percentile(0.95) / idle.percentile(0.95):.2f}× the idle "
          f"{idle.percentile(0.95):.0f} ms")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", default="5,10,20", help="events per second, one phase each")
    parser.add_argument("--seconds", type=float, default=30, help="how long each rate is held")
    parser.add_argument("--workers", type=int, default=1, help="journey worker processes (and baseline workers)")
    parser.add_argument("--broadcast", type=int, default=100_000, help="contacts of the broadcast phase (0: none)")
    parser.add_argument("--database-url", help="a PostgreSQL server; the run uses a scratch database on it")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
