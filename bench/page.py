"""One worker's broadcast pages, in this process, without Temporal: where a page's time goes.

    .venv/bin/python -m bench.page [--contacts 20000] [--database-url URL] [--provider null|sendgrid]
        [--profile N]

Runs `broadcast_page` (the activity a BroadcastWorkflow hands each page to) page
after page over the bench audience: the claim under the contacts' locks, the
policy, rendering, the hand-over and the record. `--provider null` accepts every
message in memory, so the rate is carecast's own (store and Python); `sendgrid`
posts to the fake SendGrid in a process of its own, as bench.broadcast does.
`--profile N` prints the N functions with the most cumulative time (cProfile).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from activities.broadcast import BroadcastActivities
from activities.deliver import DeliveryActivities
from bench.broadcast import CAMPAIGNS, TEMPLATES
from bench.harness import add_contacts, fake_sendgrid, store_world
from carecast.campaign.house_rules import load_house_rules
from carecast.channels.base import OutboundMessage, ProviderReceipt
from carecast.deploy import deploy_files
from carecast.providers import build_provider
from carecast.render.templates import TemplateRenderer
from carecast.store.db import make_sessionmaker
from workflows.broadcast_contract import BroadcastPageInput

PAGE_SIZE = 1000


class NullProvider:
    """Accepts every message at once, in memory: what is left is carecast's own cost."""

    name = "null"
    idempotent = False

    def send(self, message: OutboundMessage) -> ProviderReceipt:
        return ProviderReceipt("null", f"null-{message.delivery_id}")

    def send_many(self, messages: Sequence[OutboundMessage]) -> list[ProviderReceipt]:
        return [self.send(message) for message in messages]


def postgres_cpu_seconds() -> float:
    """CPU time of this machine's PostgreSQL processes so far (Linux /proc; 0 elsewhere)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended meanwhile
            continue
        name, fields = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()
        if name == "postgres":
            ticks += int(fields[11]) + int(fields[12])  # utime + stime
    return ticks / os.sysconf("SC_CLK_TCK")


def run_pages(broadcasts: BroadcastActivities, run_id: str) -> int:
    """Every page of the audience, one after another; returns how many were sent."""
    sent, after = 0, None
    as_of = datetime.now(UTC)
    while True:
        page = BroadcastPageInput("offer", 1, run_id, as_of, after, PAGE_SIZE, None, asked_at=as_of)
        result = broadcasts.broadcast_page(page)
        sent += result.counters.sent
        if result.rows < PAGE_SIZE:
            return sent
        after = result.last_contact_id


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--database-url")
    parser.add_argument("--provider", choices=["null", "sendgrid"], default="null")
    parser.add_argument("--profile", type=int, default=0, metavar="N")
    args = parser.parse_args()
    with store_world(args.database_url, CAMPAIGNS, TEMPLATES) as (settings, engine, _):
        sessions = make_sessionmaker(engine)
        add_contacts(sessions, args.contacts, {"wants": True, "first_name": "Ada"})
        with sessions.begin() as session:
            deploy_files(session, [settings.campaigns_dir / "offer.yaml"], settings.templates_dir)
        with fake_sendgrid() if args.provider == "sendgrid" else nullcontext() as fake_url:
            if fake_url:
                provider = build_provider(replace(settings, sendgrid_api_key="SG.fake-key", sendgrid_api_host=fake_url))
            else:
                provider = NullProvider()
            house_rules = load_house_rules(settings.campaigns_dir)
            delivery = DeliveryActivities(
                sessions, TemplateRenderer(settings.templates_dir), provider, house_rules, settings.link_signer()
            )
            broadcasts = BroadcastActivities(sessions, delivery, house_rules)
            profiler = cProfile.Profile() if args.profile else None
            began, cpu_began, db_began = time.perf_counter(), time.process_time(), postgres_cpu_seconds()
            if profiler:
                profiler.enable()
            sent = run_pages(broadcasts, "broadcast/offer/bench")
            if profiler:
                profiler.disable()
            seconds, cpu = time.perf_counter() - began, time.process_time() - cpu_began
            db_cpu = postgres_cpu_seconds() - db_began
    print(f"database            {engine.dialect.name}, provider {args.provider}, pages of {PAGE_SIZE}, one thread")
    print(f"pages               {sent} recipients in {seconds:.1f} s = {sent / seconds:,.0f}/s")
    print(f"CPU, this process   {cpu:.1f} s = {cpu / sent * 1000:.2f} ms a recipient")
    if engine.dialect.name == "postgresql":
        print(f"CPU, PostgreSQL     {db_cpu:.1f} s = {db_cpu / sent * 1000:.2f} ms a recipient (all its processes)")
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.profile)


if __name__ == "__main__":
    main()
