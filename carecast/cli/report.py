"""`carecast report`: what the campaigns did, with their KPIs' verdicts."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Annotated

import typer

from carecast.cli.common import app, fail, load_settings, open_store, say

PRESSURE = "pressure"  # `report pressure`, not a campaign (a campaign may not take the name)
VERDICT_STYLE = {"met": "green", "missed": "red", "not enough data yet": "yellow"}


@app.command()
def report(
    campaign: Annotated[
        str | None,
        typer.Argument(help="a campaign id (all campaigns, a line each, without), or `pressure`: messages per contact"),
    ] = None,
    version: Annotated[int | None, typer.Option(help="only this deployed version")] = None,
    since: Annotated[
        str | None, typer.Option(help="the entries and messages of this long before now, e.g. 7d, with all their news")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Per version and step: entries, holdout, messages sent by channel, skips and deferrals by reason,
    deliveries, human opens, clicks, unsubscribes, complaints, goal conversions; lift over the holdout with
    its 95 % interval; and each KPI's verdict: met, missed, or not enough data yet.

    `carecast report pressure`: messages per contact over the last 30 days across all campaigns, by
    category (median, 95th percentile, most), the contacts at 80 % of the global ceiling or more, and
    the campaigns that sent the most."""
    from carecast.campaign.durations import parse_duration
    from carecast.campaign.house_rules import local_house_spec
    from carecast.reporting.campaign import as_dict, campaign_report, house_guardrails, reported_campaigns
    from carecast.store.db import make_sessionmaker

    settings = load_settings()
    start = None
    if since is not None:
        try:
            start = datetime.now(UTC) - parse_duration(since)
        except ValueError as exc:
            fail(f"--since {since!r}: {exc}")
    if campaign == PRESSURE:
        _pressure(settings, as_json)
        return
    local = local_house_spec(settings.campaigns_dir).guardrails  # before any deploy
    engine = open_store(settings)
    try:
        with make_sessionmaker(engine)() as session:
            house = house_guardrails(session, local)
            ids = [campaign] if campaign else reported_campaigns(session)
            reports = [campaign_report(session, i, house, version, start) for i in ids]
    finally:
        engine.dispose()
    if campaign and reports[0] is None:
        as_version = f" as version {version}" if version is not None else ""
        fail(f"{campaign} was never deployed{as_version}: nothing to report")
    reports = [r for r in reports if r is not None]
    if as_json:
        documents = [as_dict(r) for r in reports]
        say(json.dumps(documents[0] if campaign else documents, indent=2))
    elif campaign:
        _print_campaign(reports[0])
    else:
        _print_summary(reports)


def _pressure(settings, as_json: bool) -> None:
    from carecast.campaign.house_rules import local_house_spec
    from carecast.reporting.pressure import NEAR, ceiling_of, pressure
    from carecast.store.db import make_sessionmaker

    local = ceiling_of(local_house_spec(settings.campaigns_dir).global_ceiling)  # before any deploy
    engine = open_store(settings)
    try:
        with make_sessionmaker(engine)() as session:
            found = pressure(session, datetime.now(UTC), local)
    finally:
        engine.dispose()
    if as_json:
        document = {k: v for k, v in found.__dict__.items() if k != "spread"}
        document["since"] = found.since.isoformat()
        document["spread"] = {name: s.__dict__ for name, s in found.spread.items()}
        say(json.dumps(document, indent=2))
        return
    from rich.table import Table

    console = _console()
    console.print(f"messages per contact since {found.since:%Y-%m-%d %H:%M} UTC (30 days), {found.contacts} "
                  f"contacts, {found.reached} reached")  # fmt: skip
    spread = Table("category", "median", "95th percentile", "most", title_justify="left")
    for name, s in found.spread.items():
        spread.add_row(name, str(s.p50), str(s.p95), str(s.max))
    console.print(spread)
    if found.ceiling is not None:
        ceiling = f"{found.ceiling['max']} per {found.ceiling['per']}"
        console.print(f"{found.near_ceiling} contacts at {NEAR:.0%} of the global ceiling ({ceiling}) or more")
    else:
        console.print("no global ceiling in policy.yaml")
    campaigns = Table("campaign", "category", "messages", "share", title="who sends the most", title_justify="left")
    for c in found.campaigns:
        campaigns.add_row(c["campaign_id"], c["category"], str(c["messages"]), f"{c['share']:.1%}")
    console.print(campaigns)


def _console():
    """Rich's console, as wide as the terminal, or wide enough for the tables when printing to a file or pipe."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=200)


def _percent(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "–"


def _print_summary(reports) -> None:
    from rich.table import Table

    table = Table(title="Campaigns", title_justify="left")
    for column in ("campaign", "category", "versions", "entered", "sent", "delivered", "opened", "clicked",
                   "unsubscribed", "complaints", "converted", "KPIs"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("campaign", "category", "KPIs") else "right")
    for r in reports:
        verdicts = [v.verdict for version in r.versions[:1] for v in version.kpis]
        kpis = ", ".join(f"{verdicts.count(word)} {word}" for word in VERDICT_STYLE if word in verdicts) or "–"
        if r.state != "running":
            kpis = f"{r.state.upper()}; {kpis}"
        entered = sum(v.entered for v in r.versions)
        table.add_row(r.campaign_id, r.category, str(len(r.versions)), str(entered), str(r.total("sent")),
                      str(r.total("delivered")), str(r.total("opened")), str(r.total("clicked")),
                      str(r.total("unsubscribed")), str(r.total("complained")),
                      str(sum(v.converted for v in r.versions)), kpis)  # fmt: skip
    _console().print(table)
    if not reports:
        say("no campaign is deployed yet: `carecast deploy`")


def _print_campaign(r) -> None:
    from rich.table import Table

    console = _console()
    window = f" since {r.since:%Y-%m-%d %H:%M} UTC" if r.since else ""
    console.print(f"[bold]{r.campaign_id}[/bold] — {r.name} ({r.category}){window}")
    if r.state != "running":
        console.print(f"[red]{r.state}[/red]: {r.state_reason or 'by an operator'}")
    for b in r.breaches:
        console.print(f"[red]guardrail[/red] {b.kpi} {b.value:.2%} over its ceiling {b.ceiling:.2%} in version "
                      f"{b.version}, {b.found_at:%Y-%m-%d %H:%M} UTC: {b.action}")  # fmt: skip
    for v in r.versions:
        deployed = f", deployed {v.deployed_at:%Y-%m-%d %H:%M} UTC" if v.deployed_at else ""
        held = f", {v.held_out} held out" if v.held_out else ""
        ended = ", ".join(f"{count} {how}" for how, count in sorted(v.ended.items()))
        console.print(f"\n[bold]version {v.version}[/bold]{deployed}: {v.entered} entered{held}"
                      + (f"; ended: {ended}" if ended else ""))  # fmt: skip
        steps = Table(title_justify="left")
        for column in ("step", "sent", "held out", "skipped", "deferred", "failed", "waiting", "delivered", "opened",
                       "clicked", "unsubscribed", "complaints", "bounced"):  # fmt: skip
            steps.add_column(column, justify="left" if column in ("step", "sent", "skipped", "deferred") else "right")
        for s in v.steps:
            steps.add_row(*_step_row(s))
        console.print(steps)
        if v.lift is not None:
            lift = v.lift
            difference = "–" if lift.difference is None else f"{lift.difference:+.2%}"
            console.print(
                f"conversion: {lift.treated_converted}/{lift.treated} treated "
                f"({_percent(lift.treated_converted, lift.treated)}) vs {lift.held_out_converted}/{lift.held_out} "
                f"holdout ({_percent(lift.held_out_converted, lift.held_out)}); lift {difference}, 95 % interval "
                f"[{lift.interval.low:+.2%}, {lift.interval.high:+.2%}] ({lift.method})"
            )
        elif v.converted:
            console.print(f"conversion: {v.converted}/{v.entered - v.held_out} ({_percent(v.converted, v.entered)})")
        for k in v.kpis:
            value = "–" if k.value is None else f"{k.value:.2%}"
            console.print(f"KPI {k.kpi} {k.target}: {value}, 95 % interval [{k.interval.low:.2%}, "
                          f"{k.interval.high:.2%}] — [{VERDICT_STYLE[k.verdict]}]{k.verdict}[/]"
                          + (f" ({k.note})" if k.note else ""))  # fmt: skip


def _step_row(s) -> list[str]:
    by_channel = ", ".join(f"{n} {channel}" for channel, n in sorted(s.sent.items())) or "0"
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(s.skipped.items())) or "–"
    deferred = ", ".join(f"{n} {why}" for why, n in sorted(s.deferred.items())) or "–"
    opened, clicked = s.feedback.get("opened", 0), s.feedback.get("clicked", 0)
    counts = [str(s.feedback.get(kind, 0)) for kind in ("unsubscribed", "complained", "bounced")]
    rates = [f"{n} ({_percent(n, s.emails_sent)})" for n in (opened, clicked)]  # of the emails sent
    return [s.step, by_channel, str(s.held_out), skipped, deferred, str(s.failed), str(s.waiting),
            str(s.feedback.get("delivered", 0)), *rates, *counts]  # fmt: skip
