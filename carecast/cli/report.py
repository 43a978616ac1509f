"""`carecast report`: what the campaigns did, with their KPIs' verdicts."""

from __future__ import annotations

import contextlib
import json
import sys
from datetime import UTC, datetime
from typing import Annotated

import typer

from carecast.cli.common import app, fail, load_settings, open_store, say

VERDICT_STYLE = {"met": "green", "missed": "red", "not enough data yet": "yellow"}


@app.command()
def report(
    campaign: Annotated[str | None, typer.Argument(help="a campaign id; all campaigns, a line each, without")] = None,
    version: Annotated[int | None, typer.Option(help="only this deployed version")] = None,
    since: Annotated[str | None, typer.Option(help="only what happened in this long before now, e.g. 7d")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Per version and step: entries, holdout, messages sent by channel, skips and deferrals by reason,
    deliveries, human opens, clicks, unsubscribes, complaints, goal conversions; lift over the holdout with
    its 95 % interval; and each KPI's verdict: met, missed, or not enough data yet."""
    from carecast.campaign.documents import InvalidFile
    from carecast.campaign.durations import parse_duration
    from carecast.campaign.house_rules import load_house_guardrails
    from carecast.campaign.kpis import HouseGuardrails
    from carecast.reporting.campaign import as_dict, campaign_report, house_guardrails, reported_campaigns
    from carecast.store.db import make_sessionmaker

    settings = load_settings()
    start = None
    if since is not None:
        try:
            start = datetime.now(UTC) - parse_duration(since)
        except ValueError as exc:
            fail(f"--since {since!r}: {exc}")
    local = HouseGuardrails()  # before any deploy; `carecast validate` says what is wrong with a broken file
    with contextlib.suppress(InvalidFile):
        local = load_house_guardrails(settings.campaigns_dir)
    engine = open_store(settings)
    try:
        with make_sessionmaker(engine)() as session:
            house = house_guardrails(session, local)
            ids = [campaign] if campaign else reported_campaigns(session)
            reports = [campaign_report(session, i, house, version, start) for i in ids]
    finally:
        engine.dispose()
    if campaign and reports[0] is None:
        fail(f"{campaign} was never deployed{f' as version {version}' if version else ''}: nothing to report")
    reports = [r for r in reports if r is not None]
    if as_json:
        documents = [as_dict(r) for r in reports]
        say(json.dumps(documents[0] if campaign else documents, indent=2))
    elif campaign:
        _print_campaign(reports[0])
    else:
        _print_summary(reports)


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
        for column in ("step", "sent", "skipped", "deferred", "delivered", "opened", "clicked", "unsubscribed",
                       "complaints", "bounced"):  # fmt: skip
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
    if s.held_out:
        by_channel += f" ({s.held_out} held out)"
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(s.skipped.items())) or "–"
    deferred = ", ".join(f"{n} {why}" for why, n in sorted(s.deferred.items())) or "–"
    opened, clicked = s.feedback.get("opened", 0), s.feedback.get("clicked", 0)
    counts = [str(s.feedback.get(kind, 0)) for kind in ("unsubscribed", "complained", "bounced")]
    rates = [f"{n} ({_percent(n, s.emails_delivered)})" for n in (opened, clicked)]
    return [s.step, by_channel, skipped, deferred, str(s.feedback.get("delivered", 0)), *rates, *counts]
