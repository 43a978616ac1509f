"""A campaign's life: `validate`, `schema`, `preview`, `deploy`, `send-test`, `audience`, `campaign ...`."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from carecast.cli.common import (
    app,
    campaign_app,
    fail,
    load_settings,
    open_store,
    relay_to_temporal,
    say,
    store_if_ready,
)


def _print_report(report) -> None:
    for problem in report.errors:
        typer.secho(f"{problem}", fg=typer.colors.RED, err=True)
    for problem in report.warnings:
        typer.secho(f"warning: {problem}", fg=typer.colors.YELLOW, err=True)


@app.command()
def validate(
    paths: Annotated[list[Path] | None, typer.Argument(help="campaign files; all of campaigns/ by default")] = None,
) -> None:
    """Check campaigns, house rules, lifecycle stages and templates; exit 1 on any error.

    Where the store is ready, filters are also checked against the stored contacts' attributes.
    """
    from carecast.campaign.validate import validate_project
    from carecast.store.db import make_sessionmaker

    settings = load_settings()
    engine = store_if_ready(settings)
    store = make_sessionmaker(engine)() if engine is not None else None
    try:
        report = validate_project(settings.campaigns_dir, settings.templates_dir, paths, store)
    finally:
        if engine is not None:
            store.close()
            engine.dispose()
    _print_report(report)
    if not report.ok:
        say(f"{len(report.errors)} error(s), {len(report.warnings)} warning(s)")
        raise typer.Exit(1)
    say(f"{len(report.campaigns)} campaign(s) valid, {len(report.warnings)} warning(s)")


@app.command()
def schema() -> None:
    """Print the JSON Schema of campaign files (editors use it to autocomplete and underline)."""
    from carecast.campaign.model import Campaign

    document = Campaign.model_json_schema()
    document["title"] = "carecast campaign"
    typer.echo(json.dumps(document, indent=2))


@app.command()
def preview(
    campaign_id: Annotated[str, typer.Argument(help="campaign id, e.g. welcome_series")],
    contact: Annotated[str | None, typer.Option(help="render for this stored contact")] = None,
    sample: Annotated[
        bool, typer.Option("--sample", help="render for the campaign's sample contact (default)")
    ] = False,
    step: Annotated[str | None, typer.Option(help="only this step")] = None,
) -> None:
    """Render each message of a campaign as the customer would get it (default: its sample contact)."""
    from carecast.preview import PreviewError, preview_campaign

    if sample and contact:
        fail("choose --contact ID or --sample, not both")
    settings = load_settings()
    engine = open_store(settings) if contact else None
    try:
        for block in preview_campaign(settings, campaign_id, contact_id=contact, step_id=step, engine=engine):
            say(block)
    except PreviewError as exc:
        fail(str(exc))
    finally:
        if engine is not None:
            engine.dispose()


@app.command()
def deploy(
    paths: Annotated[list[Path] | None, typer.Argument(help="campaign files; all of campaigns/ by default")] = None,
) -> None:
    """Validate, store new campaign versions, and create or update their Temporal Schedules."""
    from carecast.campaign.validate import validate_project
    from carecast.deploy import Change, deploy_versions, sync_schedules
    from carecast.store.db import make_sessionmaker
    from carecast.store.house_rules import deploy_house_rules
    from carecast.temporal import connect

    settings = load_settings()
    report = validate_project(settings.campaigns_dir, settings.templates_dir)
    _print_report(report)
    if not report.ok:
        fail("nothing deployed: fix the errors above")
    campaigns = report.campaigns
    if paths:
        wanted = {Path(p).resolve() for p in paths}
        campaigns = [c for c in campaigns if (settings.campaigns_dir / f"{c.id}.yaml").resolve() in wanted]
    engine = open_store(settings)

    async def run():
        client = await connect(settings)
        with make_sessionmaker(engine).begin() as session:
            changes, versions, removed = deploy_versions(
                session, campaigns, settings.templates_dir, report.house_rules.email, remove_missing=not paths
            )
            if deploy_house_rules(session, settings.campaigns_dir):
                changes.append(Change("policy.yaml", "house rules deployed: every worker applies them within seconds"))
        schedules = await sync_schedules(client, campaigns, versions, removed, settings, report.lifecycle)
        return changes + schedules

    try:
        changes = asyncio.run(run())
    except RuntimeError as exc:
        fail(f"cannot reach Temporal at {settings.temporal_address}: {exc}")
    finally:
        engine.dispose()
    for change in changes:
        say(str(change))
    say(f"{len(changes)} change(s)" if changes else "nothing changed")


def _control(campaign_id: str, command: str, reason: str | None) -> None:
    from sqlalchemy import select

    from carecast.intake.controls import ControlError, control_campaign
    from carecast.store.db import make_sessionmaker
    from carecast.store.models import CampaignVersion

    settings = load_settings()
    engine = open_store(settings)
    try:
        with make_sessionmaker(engine).begin() as session:
            if (
                session.scalar(select(CampaignVersion.id).where(CampaignVersion.campaign_id == campaign_id).limit(1))
                is None
            ):
                raise ControlError(f"no deployed campaign {campaign_id!r}; run `carecast deploy` first")
            change = control_campaign(session, campaign_id, command, reason)
        if change.told:
            relay_to_temporal(settings, engine, change.told, "journey signal(s)")
    except ControlError as exc:
        fail(str(exc))
    finally:
        engine.dispose()
    if change.before == change.after:
        say(f"{campaign_id} is {change.after} already")
    else:
        say(f"{campaign_id} {change.before} -> {change.after}; {len(change.told)} running journey(s) told")


REASON = typer.Option(help="why, for the record (shown with the state)")


@campaign_app.command("stop")
def campaign_stop(campaign_id: str, reason: Annotated[str | None, REASON] = None) -> None:
    """Take no new entries and end the running journeys; nothing more is sent for it."""
    _control(campaign_id, "stop", reason)


@campaign_app.command("start")
def campaign_start(campaign_id: str, reason: Annotated[str | None, REASON] = None) -> None:
    """Take entries again after a stop (and release a pause)."""
    _control(campaign_id, "start", reason)


@campaign_app.command("pause")
def campaign_pause(campaign_id: str, reason: Annotated[str | None, REASON] = None) -> None:
    """Hold every send of the campaign; journeys wait where they are (a held message still expires)."""
    _control(campaign_id, "pause", reason)


@campaign_app.command("resume")
def campaign_resume(campaign_id: str, reason: Annotated[str | None, REASON] = None) -> None:
    """Release a pause: held sends go at once."""
    _control(campaign_id, "resume", reason)


@campaign_app.command("status")
def campaign_status(campaign_id: str) -> None:
    """Whether the campaign runs, is paused or stopped, and how many of its journeys are under way."""
    from sqlalchemy import func, select

    from carecast.store.db import make_sessionmaker
    from carecast.store.models import CampaignControl, CampaignVersion, Enrolment

    engine = open_store(load_settings())
    try:
        with make_sessionmaker(engine)() as session:
            if (
                session.scalar(select(CampaignVersion.id).where(CampaignVersion.campaign_id == campaign_id).limit(1))
                is None
            ):
                fail(f"no deployed campaign {campaign_id!r}; run `carecast deploy` first")
            control = session.get(CampaignControl, campaign_id)
            running = session.scalar(
                select(func.count())
                .select_from(Enrolment)
                .where(Enrolment.campaign_id == campaign_id, Enrolment.ended_at.is_(None))
            )
    finally:
        engine.dispose()
    state = control.state if control else "running"
    since = ""
    if control:
        since = f" since {control.changed_at:%Y-%m-%d %H:%M}Z" + (f" ({control.reason})" if control.reason else "")
    say(f"{campaign_id}: {state}{since}; {running} journey(s) under way")


@app.command("send-test")
def send_test_command(
    campaign_id: Annotated[str, typer.Argument(help="a campaign in the campaigns folder, deployed or not")],
    to: Annotated[str, typer.Option("--to", help="an email address, or a phone number as +<country code><number>")],
    contact: Annotated[str | None, typer.Option(help="render for this stored contact (default: the sample)")] = None,
    step: Annotated[str | None, typer.Option(help="this step's message (default: the first on that channel)")] = None,
) -> None:
    """Send one message of a campaign to yourself, as a contact would get it, marked [TEST].

    Through the configured provider (or the outbox), outside the ledger: it uses up no cap, is in no
    report, and its links are samples, so clicking them changes nothing for the contact.
    """
    from carecast.channels.base import ProviderError
    from carecast.preview import PreviewError
    from carecast.send_test import compose_test_message, send_test

    settings = load_settings()
    engine = open_store(settings) if contact else None
    try:
        message = compose_test_message(settings, campaign_id, to, contact, step, engine)
        receipt = send_test(settings, message)
    except PreviewError as exc:
        fail(str(exc))
    except ProviderError as exc:
        fail(f"the provider refused the test: {exc}")
    finally:
        if engine is not None:
            engine.dispose()
    say(f"sent test  {message.channel} to {message.to} by {receipt.provider} ({message.subject or message.text[:40]})")


@app.command("audience")
def audience(
    campaign_id: Annotated[str, typer.Argument(help="a deployed broadcast campaign")],
    as_json: Annotated[bool, typer.Option("--json", help="print the counts as JSON")] = False,
) -> None:
    """Whom a broadcast would reach now, and what the policy would do with each: a dry run that writes nothing."""
    from carecast.audience import audience_report
    from carecast.broadcasts import BroadcastError, deployed_broadcast
    from carecast.campaign.documents import InvalidFile
    from carecast.campaign.house_rules import load_house_rules
    from carecast.store.db import make_sessionmaker
    from carecast.store.house_rules import DeployedHouseRules

    settings = load_settings()
    engine = open_store(settings)
    sessions = make_sessionmaker(engine)
    try:
        rules = DeployedHouseRules(sessions, fallback=load_house_rules(settings.campaigns_dir))()
        with sessions() as session:
            campaign, _ = deployed_broadcast(session, campaign_id)
            report = audience_report(session, campaign, rules, datetime.now(UTC))
    except BroadcastError as exc:
        fail(str(exc))
    except InvalidFile as exc:
        fail(f"the house rules cannot be read:\n{exc}")
    finally:
        engine.dispose()
    if as_json:
        say(json.dumps(report.as_dict(), indent=2))
        return
    listed = lambda counts: ", ".join(f"{k} {n}" for k, n in counts.most_common()) or "none"  # noqa: E731
    say(f"{campaign_id}: {report.matched} contact(s) match its audience (as if started by hand now)")
    say(f"  would send now   {listed(report.sends)}")
    say(f"  would wait       {listed(report.deferred)}")
    say(f"  would not reach  {listed(report.skipped)}")
