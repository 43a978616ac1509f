"""Shared by every command: the Typer apps, settings and store at the edge, one-line errors, Temporal."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

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
temporal_app = typer.Typer(help="What a Temporal cluster needs before carecast runs on it.", no_args_is_help=True)
app.add_typer(temporal_app, name="temporal")


def load_settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        fail(str(exc))


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


def fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def open_store(settings: Settings):
    """An engine on a store at the current schema, or a clear exit naming the fix."""
    from carecast.store.db import make_engine
    from carecast.store.migrate import StoreNotReadyError, check_schema

    engine = make_engine(settings.database_url)
    try:
        check_schema(engine)
    except StoreNotReadyError as exc:
        engine.dispose()
        fail(str(exc))
    except Exception as exc:  # the database itself does not answer
        engine.dispose()
        fail(f"cannot open the store {hide_password(settings.database_url)}: {str(exc).splitlines()[0]}")
    return engine


def store_if_ready(settings: Settings):
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


def say(line: str) -> None:
    typer.echo(line)


def configure_logging() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The outbox line is the product's own output: print it plainly.
    outbox = logging.getLogger("carecast.outbox")
    outbox.setLevel(logging.INFO)
    outbox.propagate = False
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("outbox     %(message)s"))
    outbox.addHandler(handler)


def require_shared_secret(settings: Settings) -> None:
    """Refuses to start a process that would seal links with a secret no other process has."""
    try:
        settings.shared_secret()
    except ConfigError as exc:
        fail(str(exc))


def run_temporal(settings: Settings, work):
    """Runs `work(client)` against Temporal, turning the usual failures into one-line errors."""
    from carecast.broadcasts import BroadcastError
    from carecast.temporal import connect

    async def run():
        return await work(await connect(settings))

    try:
        return asyncio.run(run())
    except BroadcastError as exc:
        fail(str(exc))
    except RuntimeError as exc:
        fail(f"cannot reach Temporal at {settings.temporal_address}: {exc}")


def relay_to_temporal(settings: Settings, engine, signals: list[int], what: str) -> None:
    """Tells Temporal what a command wrote to the outbox; when it does not answer, the worker's relay will."""
    from carecast.intake.relay import Relay
    from carecast.store.db import make_sessionmaker
    from carecast.temporal import connect

    async def run():
        return await Relay(await connect(settings), make_sessionmaker(engine), settings.task_queue).send(signals)

    try:
        report = asyncio.run(run())
    except RuntimeError as exc:  # the Temporal client raises RuntimeError when it cannot connect
        warn_queued(settings, len(signals), what, exc)
        return
    if report.waiting:
        warn_queued(settings, len(report.waiting), what, "it did not answer")


def warn_queued(settings: Settings, count: int, what: str, why) -> None:
    typer.secho(
        f"warning: {count} {what} stored but not yet told to Temporal at {settings.temporal_address} ({why}); "
        "the relay in every `carecast worker` delivers them as soon as Temporal answers",
        fg=typer.colors.YELLOW, err=True,
    )  # fmt: skip


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
