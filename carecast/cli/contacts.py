"""`contacts import|suppress|revoke-links|export|forget|audit-saves`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import phonenumbers
import typer

from carecast.cli.common import (
    contacts_app,
    fail,
    load_settings,
    open_store,
    relay_to_temporal,
    require_shared_secret,
    say,
)


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
        fail(f"--default-region {default_region!r} is not a region code such as US, GB or FR")
    settings = load_settings()
    require_shared_secret(settings)
    engine = open_store(settings)
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
        fail(str(exc))
    s = report.summary
    if report.signals:
        relay_to_temporal(settings, engine, report.signals, "stage journey signal(s)")
        say(f"announced  {len(s.stage_moves)} lifecycle stage change(s)")
    engine.dispose()
    say(
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

    settings = load_settings()
    engine = open_store(settings)
    try:
        with make_sessionmaker(engine).begin() as session:
            added = suppress(session, channel, address, reason, source="cli")
    except ValueError as exc:
        fail(str(exc))
    finally:
        engine.dispose()
    say(f"{channel} {address} {'suppressed' if added else 'was already suppressed'}")


@contacts_app.command("revoke-links")
def contacts_revoke_links(contact_id: Annotated[str, typer.Argument(help="the contact's id")]) -> None:
    """Retire every preference link sent to a contact so far (a forwarded email, say).

    The old links still unsubscribe, forever; they no longer turn anything on. The page
    they open offers to send a fresh link to the address on file.
    """
    from carecast.contacts.privacy import UnknownContact, revoke_links
    from carecast.store.db import make_sessionmaker

    engine = open_store(load_settings())
    try:
        with make_sessionmaker(engine).begin() as session:
            version = revoke_links(session, contact_id)
    except UnknownContact as exc:
        fail(str(exc))
    finally:
        engine.dispose()
    say(f"links of {contact_id} revoked: only links made from now on (version {version}) may turn things on")


@contacts_app.command("export")
def contacts_export(contact_id: Annotated[str, typer.Argument(help="the contact's id")]) -> None:
    """Print everything carecast keeps about a contact as JSON (GDPR article 15, right of access).

    The contact, their preferences, the consent trail with the words shown, suppressions of
    their addresses, their events, their journeys and the messages sent to them.
    """
    from carecast.contacts.privacy import UnknownContact, export
    from carecast.store.db import make_sessionmaker

    engine = open_store(load_settings())
    try:
        with make_sessionmaker(engine)() as session:
            data = export(session, contact_id)
    except UnknownContact as exc:
        fail(str(exc))
    finally:
        engine.dispose()
    say(json.dumps(data, indent=2, ensure_ascii=False, default=str))


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
    settings = load_settings()
    require_shared_secret(settings)
    engine = open_store(settings)
    try:
        with make_sessionmaker(engine).begin() as session:
            done = forget(session, contact_id, settings.address_key())
        removed = _remove_outbox_files(settings.outbox_dir, done.message_ids)
        if done.journeys_told:
            relay_to_temporal(settings, engine, done.journeys_told, "journey stop(s)")
    except UnknownContact as exc:
        fail(f"{exc}: nothing to forget (already forgotten, or never known)")
    finally:
        engine.dispose()
    say(
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

    engine = open_store(load_settings())
    try:
        with make_sessionmaker(engine)() as session:
            found = suspect_saves(session)
    finally:
        engine.dispose()
    if as_json:
        rows = [dict(vars(s), saved_at=s.saved_at.isoformat()) for s in found]
        say(json.dumps(rows, indent=2))
        return
    for suspect in found:
        say(suspect.line())
    if found:
        say(f'{len(found)} contact(s) to review (README: "Saves to review after the one-click defect")')
    else:
        say("no preference-center save looks like the one-click defect")


def _count_data_lines(file: Path) -> int | None:
    try:
        with file.open("rb") as handle:
            return max(sum(1 for _ in handle) - 1, 0)
    except OSError:
        return None  # import_contacts reports why it cannot read the file
