"""`POST /v1/events`: an event in, stored once, journeys steered and started.

The store's work runs in a thread, never on the event loop. The event is stored
with the outbox rows of the journeys it starts or steers before Temporal is asked;
when Temporal does not answer, the reply lists them under `queued` and the relay
in the workers delivers them when it does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from carecast.campaign.patterns import IDENTIFIER
from carecast.contacts.kept import AddressKey
from carecast.contacts.schema import CONTACT_ID, ContactFields, personal_id
from carecast.contacts.writer import create_if_missing
from carecast.intake.ingest import ingest_event
from carecast.intake.record import IncomingEvent, UnknownContactError
from carecast.metrics import EVENTS

MAX_EVENT_ID = 128  # the events table's column


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(
        min_length=1, max_length=MAX_EVENT_ID, description="your id for the event; a repeat is ignored"
    )
    contact_id: str = Field(pattern=CONTACT_ID)
    name: str = Field(pattern=IDENTIFIER, description="e.g. order_placed")
    occurred_at: AwareDatetime
    data: dict[str, Any] = Field(default_factory=dict)
    create_contact: ContactFields | None = Field(
        default=None, description="create the contact with these fields if it does not exist yet"
    )

    _not_personal = field_validator("contact_id", mode="before")(personal_id)


class EventAccepted(BaseModel):
    event_id: str
    duplicate: bool
    started: list[str]
    already_running: list[str]
    not_entered: dict[str, str]
    signalled: list[str]
    queued: list[str] = Field(description="journeys to start or tell once Temporal answers (the workers' relay)")


def events_router(
    sessions: sessionmaker[Session],
    temporal: Callable[[], Awaitable[Client]],
    task_queue: str,
    auth,
    address_key: AddressKey,
) -> APIRouter:
    router = APIRouter(dependencies=[Depends(auth)])

    @router.post("/v1/events", response_model=EventAccepted)
    async def post_event(body: EventIn) -> EventAccepted:
        """200 with `duplicate: true` for an event id seen before; 404 for an unknown contact."""
        if body.create_contact is not None:
            await asyncio.to_thread(_create_contact, sessions, body.contact_id, body.create_contact, address_key)
        event = IncomingEvent(body.event_id, body.contact_id, body.name, body.occurred_at, body.data)
        try:
            client = await temporal()
        except RuntimeError:  # Temporal does not answer: the event is stored and its journeys queued
            client = None
        try:
            result = await ingest_event(client, sessions, task_queue, event, settle_later=True)
        except UnknownContactError as exc:
            EVENTS.labels("unknown_contact").inc()
            raise HTTPException(
                status.HTTP_404_NOT_FOUND,
                f"{exc}; or send create_contact with the contact's fields to create it with the event",
            ) from None
        EVENTS.labels("duplicate" if result.duplicate else "recorded").inc()
        return EventAccepted(**result.__dict__)

    return router


def _create_contact(
    sessions: sessionmaker[Session], contact_id: str, fields: ContactFields, address_key: AddressKey
) -> None:
    with sessions.begin() as session:
        create_if_missing(session, contact_id, fields, source="api", address_key=address_key)
