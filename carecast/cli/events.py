"""`events send`."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Annotated

import typer

from carecast.cli.common import (
    events_app,
    fail,
    load_settings,
    open_store,
    require_shared_secret,
    say,
    warn_queued,
)


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
    from carecast.intake.record import IncomingEvent, UnknownContactError, not_entered_words
    from carecast.store.db import make_sessionmaker
    from carecast.temporal import connect

    payload: dict = {}
    if data is not None:
        try:
            payload = json.loads(data)
        except json.JSONDecodeError as exc:
            fail(f"--data is not valid JSON: {exc.msg} at column {exc.colno}")
        if not isinstance(payload, dict):
            fail('--data must be a JSON object, e.g. \'{"order_id": "o-1"}\'')
    if not re.fullmatch(IDENTIFIER, event):
        fail(f"event name {event!r} must match {IDENTIFIER}, e.g. order_placed")
    if event_id is not None and not 1 <= len(event_id) <= MAX_EVENT_ID:
        fail(f"--id must be 1 to {MAX_EVENT_ID} characters")
    fields = None
    if create_contact is not None:
        try:
            personal_id(contact)
            fields = ContactFields.model_validate_json(create_contact)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            fail(f"--create-contact: {first_error(exc)}")
        if not re.fullmatch(CONTACT_ID, contact):
            fail(f"contact id {contact!r} must match {CONTACT_ID}")
    settings = load_settings()
    incoming = IncomingEvent(
        event_id=event_id or f"cli-{uuid.uuid4()}",
        contact_id=contact,
        name=event,
        occurred_at=datetime.now(UTC),
        data=payload,
    )

    engine = open_store(settings)
    if fields is not None:
        require_shared_secret(settings)
        with make_sessionmaker(engine).begin() as session:
            if create_if_missing(session, contact, fields, source="cli", address_key=settings.address_key()):
                say(f"contact    {contact} created")

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
        fail(str(exc))
    say(f"event {result.event_id} {'already recorded' if result.duplicate else 'recorded'}")
    for workflow_id in result.started:
        say(f"started    {workflow_id}")
    for workflow_id in result.already_running:
        say(f"existing   {workflow_id} (this entry was already enrolled)")
    for workflow_id in result.signalled:
        say(f"told       {workflow_id}")
    for workflow_id in result.queued:
        say(f"queued     {workflow_id}")
    if result.queued:
        warn_queued(settings, len(result.queued), "journey signal(s)", unreachable or "it did not answer")
    for campaign_id, reason in result.not_entered.items():
        say(f"not entered {campaign_id}: {not_entered_words(reason)}")
    if not (result.started or result.already_running or result.queued or result.not_entered or result.signalled):
        say(f"no deployed campaign is triggered by {event!r}")
