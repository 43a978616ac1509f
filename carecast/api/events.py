"""`POST /v1/events`: an event in, stored once, journeys steered and started."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from carecast.campaign.patterns import IDENTIFIER
from carecast.contacts.schema import CONTACT_ID, ContactFields, ContactInput
from carecast.contacts.writer import write_contacts
from carecast.enrolment import IncomingEvent, UnknownContactError, ingest_event
from carecast.store.models import Contact


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(min_length=1, max_length=128, description="your id for the event; a repeat is ignored")
    contact_id: str = Field(pattern=CONTACT_ID)
    name: str = Field(pattern=IDENTIFIER, description="e.g. order_placed")
    occurred_at: AwareDatetime
    data: dict[str, Any] = Field(default_factory=dict)
    create_contact: ContactFields | None = Field(
        default=None, description="create the contact with these fields if it does not exist yet"
    )


class EventAccepted(BaseModel):
    event_id: str
    duplicate: bool
    started: list[str]
    already_running: list[str]
    not_entered: dict[str, str]
    signalled: list[str]


def events_router(
    sessions: sessionmaker[Session], temporal: Callable[[], Awaitable[Client]], task_queue: str, auth
) -> APIRouter:
    router = APIRouter(dependencies=[Depends(auth)])

    @router.post("/v1/events", response_model=EventAccepted)
    async def post_event(body: EventIn) -> EventAccepted:
        """200 with `duplicate: true` for an event id seen before; 404 for an unknown contact."""
        if body.create_contact is not None:
            with sessions.begin() as session:
                if session.get(Contact, body.contact_id) is None:
                    item = ContactInput.for_id(body.contact_id, body.create_contact)
                    write_contacts(session, [item], source="api")
        event = IncomingEvent(body.event_id, body.contact_id, body.name, body.occurred_at, body.data)
        try:
            client = await temporal()
        except RuntimeError as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"Temporal does not answer: {exc}") from None
        try:
            result = await ingest_event(client, sessions, task_queue, event)
        except UnknownContactError as exc:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND,
                f"{exc}; or send create_contact with the contact's fields to create it with the event",
            ) from None
        return EventAccepted(**result.__dict__)

    return router
