"""`carecast ...`: the command line for operators and marketers."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import phonenumbers
import typer

from carecast.config import ConfigError, Settings, hide_password

app = typer.Typer(
    help="carecast: outbound campaigns and proactive care on Temporal.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="The carecast store.", no_args_is_help=True)
events_app = typer.Typer(help="Events that start and steer journeys.", no_args_is_help=True)
contacts_app = typer.Typer(help="Contacts and their preferences.", no_args_is_help=True)
broadcast_app = typer.Typer(help="Start and steer broadcasts.", no_args_is_help=True)
campaign_app = typer.Typer(help="Hold, stop and start a campaign's journeys and sends.", no_args_is_help=True)
deliveries_app = typer.Typer(help="Messages that need a human: uncertain or failed.", no_args_is_help=True)
app.add_typer(broadcast_app, name="broadcast")
app.add_typer(campaign_app, name="campaign")
app.add_typer(db_app, name="db")
app.add_typer(events_app, name="events")
app.add_typer(contacts_app, name="contacts")
app.add_typer(deliveries_app, name="deliveries")


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        _fail(str(exc))


def _close_files_to_others() -> None:
    """Files an older version left readable by everyone become the owner's (carecast/owner_only.py)."""
    from carecast.owner_only import close_to_others

    try:
        closed = close_to_others(Settings.from_env())
    except ConfigError:
        return  # the command says what is wrong with the settings
    except OSError as exc:
        typer.secho(f"warning: could not close carecast's files to others: {exc}", err=True)
        return
    if closed:
        typer.secho(f"note: {len(closed)} of carecast's files and folders were readable by others, now only by you: "
                    f"{', '.join(str(p) for p in closed[:3])}{' …' if len(closed) > 3 else ''}", err=True)  # fmt: skip


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def _store(settings: Settings):
    """An engine on a store at the current schema, or a clear exit naming the fix."""
    from carecast.store.db import make_engine
    from carecast.store.migrate import StoreNotReadyError, check_schema

    engine = make_engine(settings.database_url)
    try:
        check_schema(engine)
    except StoreNotReadyError as exc:
        engine.dispose()
        _fail(str(exc))
    except Exception as exc:  # the database itself does not answer
        engine.dispose()
        _fail(f"cannot open the store {hide_password(settings.database_url)}: {str(exc).splitlines()[0]}")
    return engine


def _store_if_ready(settings: Settings):
    """An engine on a store at the current schema, or None (never creates one: no file, no store)."""
    from carecast.owner_only import sqlite_files
    from carecast.store.db import make_engine
    from carecast.store.migrate import check_schema

    database = sqlite_files(settings.database_url)
    if database and not database[0].exists():
        return None
    engine = make_engine(settings.database_url)
    try:
        check_schema(engine)
    except Exception:  # noqa: BLE001 - not migrated, or no database here: there is nothing to look at
        engine.dispose()
        return None
    return engine


def _say(line: str) -> None:
    typer.echo(line)


def _configure_logging() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The outbox line is the product's own output: print it plainly.
    outbox = logging.getLogger("carecast.outbox")
    outbox.setLevel(logging.INFO)
    outbox.propagate = False
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("outbox     %(message)s"))
    outbox.addHandler(handler)


@app.command()
def dev() -> None:
    """Start everything on this machine: Temporal dev server, store, worker, API, local outbox."""
    from carecast.dev import DevServerError, run_dev
    from carecast.ports import PortInUseError

    _configure_logging()
    settings = _settings()
    try:
        asyncio.run(run_dev(settings, _say))
    except (PortInUseError, DevServerError, ConfigError) as exc:
        _fail(str(exc))


@app.command()
def worker() -> None:
    """Run a worker against CARECAST_TEMPORAL_ADDRESS (as many as you like, on any machine)."""
    from carecast.providers import build_provider, describe_providers
    from carecast.temporal import connect
    from carecast.worker import carecast_worker

    _configure_logging()
    settings = _settings()
    _require_shared_secret(settings)
    engine = _store(settings)

    async def run() -> None:
        client = await connect(settings)
        try:
            provider = build_provider(settings)
            _say(describe_providers(settings))
            async with carecast_worker(client, settings, engine, provider) as w:
                _say(f"worker     polling task queue {settings.task_queue!r} on {settings.temporal_address}")
                await w.run()
        finally:
            engine.dispose()

    try:
        asyncio.run(run())
    except ConfigError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        pass


@app.command()
def api() -> None:
    """Serve the HTTP API on CARECAST_API_HOST:CARECAST_API_PORT."""
    import uvicorn

    from carecast.api.app import create_app
    from carecast.api.logs import log_config

    settings = _settings()
    _require_shared_secret(settings)
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port, log_config=log_config())


def _require_shared_secret(settings: Settings) -> None:
    """Refuses to start a process that would seal links with a secret no other process has."""
    try:
        settings.shared_secret()
    except ConfigError as exc:
        _fail(str(exc))


@app.command("codec-server")
def codec_server(
    port: Annotated[int | None, typer.Option(help="port on 127.0.0.1 (default: CARECAST_CODEC_PORT, 8081)")] = None,
    ui_origin: Annotated[
        list[str] | None,
        typer.Option("--ui-origin", help="the Temporal UI's origin, e.g. https://cloud.temporal.io (repeat for more)"),
    ] = None,
) -> None:
    """Let the Temporal UI and CLI read sealed payloads: a codec endpoint on 127.0.0.1 for your own browser.

    Point the UI's codec endpoint (Temporal Cloud: the namespace's "Codec Server" setting; a
    self-hosted UI: TEMPORAL_CODEC_ENDPOINT) or `temporal --codec-endpoint` at it.
    """
    import uvicorn

    from carecast.api.codec import codec_app, ui_origins
    from carecast.temporal_codec import EncryptionCodec

    settings = _settings()
    if not settings.temporal_payload_key:
        _fail("CARECAST_TEMPORAL_PAYLOAD_KEY is not set: payloads are not sealed, so there is nothing to decode")
    origins = ui_origin or ui_origins(settings)
    port = port or settings.codec_port
    codec = EncryptionCodec(settings.temporal_payload_key, previous=settings.previous_payload_keys)
    _say(f"codec      http://127.0.0.1:{port} (for {', '.join(origins)}); Ctrl-C stops it")
    uvicorn.run(codec_app(codec, origins), host="127.0.0.1", port=port, log_level="warning")


@app.command("fake-providers")
def fake_providers(
    port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 8025,
    carecast_url: Annotated[str | None, typer.Option(help="where callbacks go; CARECAST_PUBLIC_URL by default")] = None,
    callbacks: Annotated[bool, typer.Option(help="post signed callbacks back (off: only receive)")] = True,
) -> None:
    """Serve fake SendGrid and Twilio for demos; they post signed callbacks back to carecast every second."""
    import signal
    import threading

    from carecast.fakes.server import FakeProviders

    settings = _settings()
    url = (carecast_url or settings.public_url).rstrip("/")
    fakes = FakeProviders(
        sendgrid_webhook_url=f"{url}/webhooks/sendgrid" if callbacks else None,
        twilio_inbound_url=f"{url}/webhooks/twilio/inbound" if callbacks else None,
        auto_callbacks=callbacks,
        callbacks=callbacks,
        keep=1000,  # a long demo or a benchmark must not grow without end
        port=port,
    )
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with fakes:
        _say(f"fakes      SendGrid and Twilio on {fakes.url}; callbacks go to {url if callbacks else 'nowhere'}")
        _say("           start carecast (worker and api) with:")
        for name, value in (
            ("SENDGRID_API_KEY", fakes.sendgrid.api_key),
            ("SENDGRID_API_HOST", fakes.url),
            ("SENDGRID_WEBHOOK_PUBLIC_KEY", fakes.sendgrid.signer.public_key),
            ("TWILIO_ACCOUNT_SID", fakes.twilio.account_sid),
            ("TWILIO_AUTH_TOKEN", fakes.twilio.auth_token),
            ("TWILIO_API_BASE_URL", fakes.url),
            ("TWILIO_FROM_NUMBER", fakes.twilio.number),
            ("CARECAST_PUBLIC_URL", url),
        ):
            _say(f"           export {name}={value}")
        _say(f"           a reply by SMS: curl -d From=+14155550101 -d Body=STOP {fakes.url}/_fake/twilio/inbound")
        stop.wait()
    _say("stopped")


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

    settings = _settings()
    engine = _store_if_ready(settings)
    store = make_sessionmaker(engine)() if engine is not None else None
    try:
        report = validate_project(settings.campaigns_dir, settings.templates_dir, paths, store)
    finally:
        if engine is not None:
            store.close()
            engine.dispose()
    _print_report(report)
    if not report.ok:
        _say(f"{len(report.errors)} error(s), {len(report.warnings)} warning(s)")
        raise typer.Exit(1)
    _say(f"{len(report.campaigns)} campaign(s) valid, {len(report.warnings)} warning(s)")


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
        _fail("choose --contact ID or --sample, not both")
    settings = _settings()
    engine = _store(settings) if contact else None
    try:
        for block in preview_campaign(settings, campaign_id, contact_id=contact, step_id=step, engine=engine):
            _say(block)
    except PreviewError as exc:
        _fail(str(exc))
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

    settings = _settings()
    report = validate_project(settings.campaigns_dir, settings.templates_dir)
    _print_report(report)
    if not report.ok:
        _fail("nothing deployed: fix the errors above")
    campaigns = report.campaigns
    if paths:
        wanted = {Path(p).resolve() for p in paths}
        campaigns = [c for c in campaigns if (settings.campaigns_dir / f"{c.id}.yaml").resolve() in wanted]
    engine = _store(settings)

    async def run():
        client = await connect(settings)
        with make_sessionmaker(engine).begin() as session:
            changes, versions, removed = deploy_versions(
                session, campaigns, settings.templates_dir, report.house_rules.email, remove_missing=not paths
            )
            if deploy_house_rules(session, settings.campaigns_dir):
                changes.append(Change("policy.yaml", "house rules deployed: every worker applies them within seconds"))
        schedules = await sync_schedules(client, campaigns, versions, removed, settings.task_queue, report.lifecycle)
        return changes + schedules

    try:
        changes = asyncio.run(run())
    except RuntimeError as exc:
        _fail(f"cannot reach Temporal at {settings.temporal_address}: {exc}")
    finally:
        engine.dispose()
    for change in changes:
        _say(str(change))
    _say(f"{len(changes)} change(s)" if changes else "nothing changed")


def _run_temporal(settings: Settings, work):
    """Runs `work(client)` against Temporal, turning the usual failures into one-line errors."""
    from carecast.broadcasts import BroadcastError
    from carecast.temporal import connect

    async def run():
        return await work(await connect(settings))

    try:
        return asyncio.run(run())
    except BroadcastError as exc:
        _fail(str(exc))
    except RuntimeError as exc:
        _fail(f"cannot reach Temporal at {settings.temporal_address}: {exc}")


def _control(campaign_id: str, command: str, reason: str | None) -> None:
    from sqlalchemy import select

    from carecast.intake.controls import ControlError, control_campaign
    from carecast.store.db import make_sessionmaker
    from carecast.store.models import CampaignVersion

    settings = _settings()
    engine = _store(settings)
    try:
        with make_sessionmaker(engine).begin() as session:
            if (
                session.scalar(select(CampaignVersion.id).where(CampaignVersion.campaign_id == campaign_id).limit(1))
                is None
            ):
                raise ControlError(f"no deployed campaign {campaign_id!r}; run `carecast deploy` first")
            change = control_campaign(session, campaign_id, command, reason)
        if change.told:
            _relay(settings, engine, change.told, "journey signal(s)")
    except ControlError as exc:
        _fail(str(exc))
    finally:
        engine.dispose()
    if change.before == change.after:
        _say(f"{campaign_id} is {change.after} already")
    else:
        _say(f"{campaign_id} {change.before} -> {change.after}; {len(change.told)} running journey(s) told")


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

    engine = _store(_settings())
    try:
        with make_sessionmaker(engine)() as session:
            if (
                session.scalar(select(CampaignVersion.id).where(CampaignVersion.campaign_id == campaign_id).limit(1))
                is None
            ):
                _fail(f"no deployed campaign {campaign_id!r}; run `carecast deploy` first")
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
    _say(f"{campaign_id}: {state}{since}; {running} journey(s) under way")


@broadcast_app.command("start")
def broadcast_start(
    campaign_id: Annotated[str, typer.Argument(help="a deployed broadcast campaign")],
    allow_empty: Annotated[bool, typer.Option("--allow-empty", help="start it even if no contact matches")] = False,
) -> None:
    """Start a broadcast run now, whatever its schedule; it says how many contacts its audience matches."""
    from carecast.broadcasts import BroadcastError, audience_size, deployed_broadcast, start_broadcast
    from carecast.store.db import make_sessionmaker

    settings = _settings()
    engine = _store(settings)
    try:
        with make_sessionmaker(engine)() as session:
            campaign, version = deployed_broadcast(session, campaign_id)
            matched = audience_size(session, campaign, datetime.now(UTC))
    except BroadcastError as exc:
        _fail(str(exc))
    finally:
        engine.dispose()
    _say(f"audience   {matched} contact(s) match (the policy may still skip or defer some)")
    if matched == 0 and not allow_empty:
        _fail(
            f"the audience of {campaign_id} matches no contact: check its filter, and that the attributes it "
            "compares were imported with their types (e.g. attr.vip:bool); --allow-empty starts it anyway"
        )
    label = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    workflow_id = _run_temporal(settings, lambda c: start_broadcast(c, settings.task_queue, campaign, version, label))
    _say(f"started    {workflow_id}")


def _signal_broadcast(campaign_id: str, signal: str) -> None:
    from carecast.broadcasts import latest_run
    from workflows.broadcast import BroadcastWorkflow

    settings = _settings()

    async def work(client):
        workflow_id = await latest_run(client, campaign_id)
        await client.get_workflow_handle(workflow_id).signal(getattr(BroadcastWorkflow, signal))
        return workflow_id

    _say(f"{signal:<10} {_run_temporal(settings, work)}")


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

    settings = _settings()
    engine = _store(settings) if contact else None
    try:
        message = compose_test_message(settings, campaign_id, to, contact, step, engine)
        receipt = send_test(settings, message)
    except PreviewError as exc:
        _fail(str(exc))
    except ProviderError as exc:
        _fail(f"the provider refused the test: {exc}")
    finally:
        if engine is not None:
            engine.dispose()
    _say(f"sent test  {message.channel} to {message.to} by {receipt.provider} ({message.subject or message.text[:40]})")


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

    settings = _settings()
    engine = _store(settings)
    sessions = make_sessionmaker(engine)
    try:
        rules = DeployedHouseRules(sessions, fallback=load_house_rules(settings.campaigns_dir))()
        with sessions() as session:
            campaign, _ = deployed_broadcast(session, campaign_id)
            report = audience_report(session, campaign, rules, datetime.now(UTC))
    except BroadcastError as exc:
        _fail(str(exc))
    except InvalidFile as exc:
        _fail(f"the house rules cannot be read:\n{exc}")
    finally:
        engine.dispose()
    if as_json:
        _say(json.dumps(report.as_dict(), indent=2))
        return
    listed = lambda counts: ", ".join(f"{k} {n}" for k, n in counts.most_common()) or "none"  # noqa: E731
    _say(f"{campaign_id}: {report.matched} contact(s) match its audience (as if started by hand now)")
    _say(f"  would send now   {listed(report.sends)}")
    _say(f"  would wait       {listed(report.deferred)}")
    _say(f"  would not reach  {listed(report.skipped)}")


@broadcast_app.command("pause")
def broadcast_pause(campaign_id: str) -> None:
    """Pause the running broadcast of a campaign (it finishes the page it is on)."""
    _signal_broadcast(campaign_id, "pause")


@broadcast_app.command("resume")
def broadcast_resume(campaign_id: str) -> None:
    """Resume a paused broadcast."""
    _signal_broadcast(campaign_id, "resume")


@broadcast_app.command("cancel")
def broadcast_cancel(campaign_id: str) -> None:
    """Stop a broadcast after the page it is on; nobody is sent a message twice."""
    _signal_broadcast(campaign_id, "cancel")


@broadcast_app.command("status")
def broadcast_status(campaign_id: str) -> None:
    """How far the latest broadcast of a campaign is."""
    from temporalio.client import WorkflowExecutionStatus

    from carecast.broadcasts import latest_run, progress

    settings = _settings()

    async def work(client):
        workflow_id = await latest_run(client, campaign_id)
        described = await client.get_workflow_handle(workflow_id).describe()
        return workflow_id, described.status, await progress(client, workflow_id)

    workflow_id, run_status, state = _run_temporal(settings, work)
    if run_status != WorkflowExecutionStatus.RUNNING:
        status = run_status.name.lower()
    else:
        status = "cancelling" if state.cancelled else "paused" if state.paused else "sending"
    _say(f"{workflow_id}: {status}, {state.counters.audience}/{state.total} contacts, {state.counters.summary()}")
    for reason, count in sorted(state.counters.skipped.items()):
        _say(f"  skipped {reason}: {count}")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the store's schema to the newest migration."""
    from sqlalchemy.exc import OperationalError

    from carecast.store.db import make_engine
    from carecast.store.migrate import upgrade

    settings = _settings()
    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
    except OperationalError as exc:  # the database itself does not answer
        _fail(f"cannot open the store {hide_password(settings.database_url)}: {str(exc.orig).splitlines()[0]}")
    finally:
        engine.dispose()
    _say(f"store {hide_password(settings.database_url)} is at the newest schema")


@contacts_app.command("import")
def contacts_import(
    file: Annotated[Path, typer.Argument(help="CSV with a header: id, email, phone, timezone, ..., attr.<name>")],
    default_region: Annotated[
        str | None, typer.Option(help="region for phone numbers without +country code, e.g. US or FR")
    ] = None,
) -> None:
    """Create or update contacts from a CSV file; bad rows are listed and the rest still land."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from carecast.contacts.csv_import import ImportFileError, import_contacts
    from carecast.store.db import make_sessionmaker

    if default_region is not None and default_region.upper() not in phonenumbers.SUPPORTED_REGIONS:
        _fail(f"--default-region {default_region!r} is not a region code such as US, GB or FR")
    settings = _settings()
    _require_shared_secret(settings)
    engine = _store(settings)
    try:
        total = _count_data_lines(file)
        with Progress(
            TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=True
        ) as bar:
            task = bar.add_task("rows", total=total)
            report = import_contacts(
                make_sessionmaker(engine),
                file,
                address_key=settings.address_key(),
                default_region=default_region.upper() if default_region else None,
                progress=lambda rows_read: bar.update(task, completed=rows_read),
            )
    except ImportFileError as exc:
        engine.dispose()
        _fail(str(exc))
    s = report.summary
    if report.signals:
        _relay(settings, engine, report.signals, "stage journey signal(s)")
        _say(f"announced  {len(s.stage_moves)} lifecycle stage change(s)")
    engine.dispose()
    _say(
        f"{report.rows} rows: {s.created} created, {s.updated} updated, {s.unchanged} unchanged, "
        f"{len(report.rejected)} rejected"
    )
    for error in report.rejected:
        typer.secho(f"{file}: {error}", fg=typer.colors.YELLOW, err=True)
    if report.rejected:
        raise typer.Exit(1)


@contacts_app.command("suppress")
def contacts_suppress(
    channel: Annotated[str, typer.Argument(help="email, sms or voice")],
    address: Annotated[str, typer.Argument(help="the email address or phone number (+E.164)")],
    reason: Annotated[
        str, typer.Option(help="manual, hard_bounce, spam_complaint, stop or invalid_address")
    ] = "manual",
) -> None:
    """Stop every campaign from using an address on a channel, whoever the contact."""
    from carecast.contacts.suppressions import suppress
    from carecast.store.db import make_sessionmaker

    settings = _settings()
    engine = _store(settings)
    try:
        with make_sessionmaker(engine).begin() as session:
            added = suppress(session, channel, address, reason, source="cli")
    except ValueError as exc:
        _fail(str(exc))
    finally:
        engine.dispose()
    _say(f"{channel} {address} {'suppressed' if added else 'was already suppressed'}")


@contacts_app.command("revoke-links")
def contacts_revoke_links(contact_id: Annotated[str, typer.Argument(help="the contact's id")]) -> None:
    """Retire every preference link sent to a contact so far (a forwarded email, say).

    The old links still unsubscribe, forever; they no longer turn anything on. The page
    they open offers to send a fresh link to the address on file.
    """
    from carecast.contacts.privacy import UnknownContact, revoke_links
    from carecast.store.db import make_sessionmaker

    engine = _store(_settings())
    try:
        with make_sessionmaker(engine).begin() as session:
            version = revoke_links(session, contact_id)
    except UnknownContact as exc:
        _fail(str(exc))
    finally:
        engine.dispose()
    _say(f"links of {contact_id} revoked: only links made from now on (version {version}) may turn things on")


@contacts_app.command("export")
def contacts_export(contact_id: Annotated[str, typer.Argument(help="the contact's id")]) -> None:
    """Print everything carecast keeps about a contact as JSON (GDPR article 15, right of access).

    The contact, their preferences, the consent trail with the words shown, suppressions of
    their addresses, their events, their journeys and the messages sent to them.
    """
    from carecast.contacts.privacy import UnknownContact, export
    from carecast.store.db import make_sessionmaker

    engine = _store(_settings())
    try:
        with make_sessionmaker(engine)() as session:
            data = export(session, contact_id)
    except UnknownContact as exc:
        _fail(str(exc))
    finally:
        engine.dispose()
    _say(json.dumps(data, indent=2, ensure_ascii=False, default=str))


@contacts_app.command("forget")
def contacts_forget(
    contact_id: Annotated[str, typer.Argument(help="the contact's id")],
    yes: Annotated[bool, typer.Option("--yes", help="do it without asking (for scripts)")] = False,
) -> None:
    """Erase a contact (GDPR article 17, right to erasure); it cannot be undone.

    Erased: the contact, their addresses, preferences and consent trail, their events and
    their outbox files; their running journeys are ended. Kept, under a keyed hash of the
    address (no address): the opt-outs still in force and suppressions, so a later import of
    the same address is still not written to. Their messages stay counted, under their id.
    """
    from carecast.contacts.privacy import UnknownContact, forget
    from carecast.store.db import make_sessionmaker

    if not yes and not typer.confirm(f"Erase contact {contact_id} and everything about them?"):
        raise typer.Exit(1)
    settings = _settings()
    _require_shared_secret(settings)
    engine = _store(settings)
    try:
        with make_sessionmaker(engine).begin() as session:
            done = forget(session, contact_id, settings.address_key())
        removed = _remove_outbox_files(settings.outbox_dir, done.message_ids)
        if done.journeys_told:
            _relay(settings, engine, done.journeys_told, "journey stop(s)")
    except UnknownContact as exc:
        _fail(f"{exc}: nothing to forget (already forgotten, or never known)")
    finally:
        engine.dispose()
    _say(
        f"{contact_id} forgotten: {done.events} event(s), {done.consent_records} consent record(s) and "
        f"{removed} outbox file(s) erased; {len(done.journeys_told)} running journey(s) ended; "
        f"{done.kept_opt_outs} opt-out(s) kept under a keyed hash of the address"
    )


def _remove_outbox_files(outbox: Path, delivery_ids: list[int]) -> int:
    """The outbox files of these messages (named by delivery id), removed; how many there were."""
    names = {f"{delivery_id:010d}" for delivery_id in delivery_ids}
    if not names or not outbox.is_dir():
        return 0
    files = [path for path in outbox.iterdir() if path.name.partition("-")[0] in names]
    for path in files:
        path.unlink(missing_ok=True)
    return len(files)


@contacts_app.command("audit-saves")
def contacts_audit_saves(
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON array instead of one line per contact")] = False,
) -> None:
    """List contacts whose last preference-center save withdrew every channel with marketing on (reads only).

    That is what a one-click unsubscribe that was not byte-exact did before commit 95eaf25; see the README.
    """
    from carecast.contacts.audit import suspect_saves
    from carecast.store.db import make_sessionmaker

    engine = _store(_settings())
    try:
        with make_sessionmaker(engine)() as session:
            found = suspect_saves(session)
    finally:
        engine.dispose()
    if as_json:
        rows = [dict(vars(s), saved_at=s.saved_at.isoformat()) for s in found]
        _say(json.dumps(rows, indent=2))
        return
    for suspect in found:
        _say(suspect.line())
    if found:
        _say(f'{len(found)} contact(s) to review (README: "Saves to review after the one-click defect")')
    else:
        _say("no preference-center save looks like the one-click defect")


@deliveries_app.command("list")
def deliveries_list(
    status: Annotated[
        list[str] | None, typer.Option("--status", help="uncertain or failed (repeat for both; default both)")
    ] = None,
    campaign: Annotated[str | None, typer.Option("--campaign", help="only this campaign's")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="at most this many, newest first")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON array instead of one line each")] = False,
) -> None:
    """List the messages that need a human, newest first: uncertain (maybe out) and failed (not out), with why."""
    from carecast.delivery.attention import NEEDS_A_HUMAN, needing_attention
    from carecast.store.db import make_sessionmaker

    statuses = tuple(status or NEEDS_A_HUMAN)
    unknown = sorted(set(statuses) - set(NEEDS_A_HUMAN))
    if unknown:
        _fail(f"--status {', '.join(unknown)}: use {' or '.join(NEEDS_A_HUMAN)}")
    engine = _store(_settings())
    try:
        with make_sessionmaker(engine)() as session:
            found = needing_attention(session, statuses, campaign, limit)
    finally:
        engine.dispose()
    if as_json:
        _say(json.dumps([dict(vars(a), updated_at=a.updated_at.isoformat()) for a in found], indent=2))
        return
    for attention in found:
        _say(attention.line())
    _say(f"{len(found)} message(s) need a human" if found else "no message needs a human")


@deliveries_app.command("resend")
def deliveries_resend(
    delivery_id: Annotated[int, typer.Argument(help="a delivery id from `carecast deliveries list`")],
    wait: Annotated[float, typer.Option("--wait", min=0, help="seconds to wait for the outcome")] = 30,
) -> None:
    """Send an uncertain or failed transactional or care message again, once, through the workers.

    For when you have checked that it did not arrive. The policy is asked again (consent,
    suppressions, quiet hours); running this twice sends it once.
    """
    from temporalio.client import WorkflowFailureError

    from carecast.delivery.resend import ResendError, resend_request, start_resend
    from carecast.store.db import make_sessionmaker

    settings = _settings()
    engine = _store(settings)
    try:
        with make_sessionmaker(engine)() as session:
            request = resend_request(session, delivery_id, datetime.now(UTC))
    except ResendError as exc:
        _fail(str(exc))
    finally:
        engine.dispose()

    async def work(client):
        handle, started = await start_resend(client, settings.task_queue, request)
        if not started:
            _say(f"delivery {delivery_id} was resent before, by {handle.id}; its outcome:")
        try:
            return handle.id, await asyncio.wait_for(handle.result(), wait)
        except TimeoutError:
            return handle.id, None
        except WorkflowFailureError as exc:
            _fail(f"{handle.id} failed: {exc.cause}")

    workflow_id, result = _run_temporal(settings, work)
    if result is None:
        _say(f"started    {workflow_id}: no outcome yet (is a worker running?); follow it in the Temporal UI")
        return
    how = f" by {result.channel}" if result.channel and result.status == "sent" else ""
    why = f" ({result.reason})" if result.reason else ""
    _say(f"{result.status}{how}{why}: delivery {result.delivery_id}, {workflow_id}")


def _relay(settings: Settings, engine, signals: list[int], what: str) -> None:
    """Tells Temporal what a command wrote to the outbox; when it does not answer, the worker's relay will."""
    from carecast.intake.relay import Relay
    from carecast.store.db import make_sessionmaker
    from carecast.temporal import connect

    async def run():
        return await Relay(await connect(settings), make_sessionmaker(engine), settings.task_queue).send(signals)

    try:
        report = asyncio.run(run())
    except RuntimeError as exc:  # the Temporal client raises RuntimeError when it cannot connect
        _queued(settings, len(signals), what, exc)
        return
    if report.waiting:
        _queued(settings, len(report.waiting), what, "it did not answer")


def _queued(settings: Settings, count: int, what: str, why) -> None:
    typer.secho(
        f"warning: {count} {what} stored but not yet told to Temporal at {settings.temporal_address} ({why}); "
        "the relay in every `carecast worker` delivers them as soon as Temporal answers",
        fg=typer.colors.YELLOW, err=True,
    )  # fmt: skip


def _count_data_lines(file: Path) -> int | None:
    try:
        with file.open("rb") as handle:
            return max(sum(1 for _ in handle) - 1, 0)
    except OSError:
        return None  # import_contacts reports why it cannot read the file


@events_app.command("send")
def events_send(
    contact: Annotated[str, typer.Argument(help="contact id")],
    event: Annotated[str, typer.Argument(help="event name, e.g. signed_up")],
    data: Annotated[str | None, typer.Option(help='event data as a JSON object, e.g. \'{"order_id": "o-1"}\'')] = None,
    event_id: Annotated[str | None, typer.Option("--id", help="event id (deduplicates); a new one by default")] = None,
    create_contact: Annotated[
        str | None,
        typer.Option(help='create the contact first if it does not exist, e.g. \'{"email": "ada@example.com"}\''),
    ] = None,
) -> None:
    """Record an event for a contact and start the journeys it triggers."""
    from carecast.api.events import MAX_EVENT_ID
    from carecast.campaign.patterns import IDENTIFIER
    from carecast.contacts.schema import CONTACT_ID, ContactFields, first_error, personal_id
    from carecast.contacts.writer import create_if_missing
    from carecast.intake.ingest import ingest_event
    from carecast.intake.record import IncomingEvent, UnknownContactError
    from carecast.store.db import make_sessionmaker
    from carecast.temporal import connect

    payload: dict = {}
    if data is not None:
        try:
            payload = json.loads(data)
        except json.JSONDecodeError as exc:
            _fail(f"--data is not valid JSON: {exc.msg} at column {exc.colno}")
        if not isinstance(payload, dict):
            _fail('--data must be a JSON object, e.g. \'{"order_id": "o-1"}\'')
    if not re.fullmatch(IDENTIFIER, event):
        _fail(f"event name {event!r} must match {IDENTIFIER}, e.g. order_placed")
    if event_id is not None and not 1 <= len(event_id) <= MAX_EVENT_ID:
        _fail(f"--id must be 1 to {MAX_EVENT_ID} characters")
    fields = None
    if create_contact is not None:
        try:
            personal_id(contact)
            fields = ContactFields.model_validate_json(create_contact)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            _fail(f"--create-contact: {first_error(exc)}")
        if not re.fullmatch(CONTACT_ID, contact):
            _fail(f"contact id {contact!r} must match {CONTACT_ID}")
    settings = _settings()
    incoming = IncomingEvent(
        event_id=event_id or f"cli-{uuid.uuid4()}",
        contact_id=contact,
        name=event,
        occurred_at=datetime.now(UTC),
        data=payload,
    )

    engine = _store(settings)
    if fields is not None:
        _require_shared_secret(settings)
        with make_sessionmaker(engine).begin() as session:
            if create_if_missing(session, contact, fields, source="cli", address_key=settings.address_key()):
                _say(f"contact    {contact} created")

    async def run():
        try:
            client, unreachable = await connect(settings), None
        except RuntimeError as exc:  # the Temporal client raises RuntimeError when it cannot connect
            client, unreachable = None, exc  # the event is stored all the same, its journeys queued
        try:
            return await ingest_event(client, make_sessionmaker(engine), settings.task_queue, incoming), unreachable
        finally:
            engine.dispose()

    try:
        result, unreachable = asyncio.run(run())
    except UnknownContactError as exc:
        _fail(str(exc))
    _say(f"event {result.event_id} {'already recorded' if result.duplicate else 'recorded'}")
    for workflow_id in result.started:
        _say(f"started    {workflow_id}")
    for workflow_id in result.already_running:
        _say(f"existing   {workflow_id} (this entry was already enrolled)")
    for workflow_id in result.signalled:
        _say(f"told       {workflow_id}")
    for workflow_id in result.queued:
        _say(f"queued     {workflow_id}")
    if result.queued:
        _queued(settings, len(result.queued), "journey signal(s)", unreachable or "it did not answer")
    for campaign_id, reason in result.not_entered.items():
        _say(f"not entered {campaign_id}: {reason}")
    if not (result.started or result.already_running or result.queued or result.not_entered or result.signalled):
        _say(f"no deployed campaign is triggered by {event!r}")


def main() -> None:
    """The `carecast` console script.

    Ends the process without interpreter teardown: the Temporal client's native
    threads can abort a finalizing interpreter ("PyGILState_Release ... must be
    current", temporalio/sdk-python#300), which would turn a successful command
    into a crash report. Output is flushed first, so nothing is lost.
    """
    # What carecast writes — the SQLite store, the outbox, secrets, the dev server's history — is the owner's
    # alone: it holds addresses and keys.
    os.umask(0o077)
    _close_files_to_others()
    try:
        app()
        code = 0
    except SystemExit as exit_:
        if isinstance(exit_.code, str):
            sys.stderr.write(exit_.code + "\n")
        code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
