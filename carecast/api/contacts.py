"""`PUT /v1/contacts/{id}`: create or update one contact and its preferences."""

from __future__ import annotations

import asyncio
import re

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session, sessionmaker

from carecast.contacts.kept import AddressKey
from carecast.contacts.schema import CONTACT_ID, ContactFields, ContactInput, personal_id
from carecast.contacts.writer import WriteSummary, write_contacts
from carecast.intake.record import record_stage_moves
from carecast.intake.relay import relay_now
from carecast.store.models import utcnow


class ContactUpdate(ContactFields):
    consent_wording: str | None = Field(
        default=None, max_length=2000, description="what the contact was shown when giving or withdrawing consent"
    )


class ContactWritten(BaseModel):
    id: str
    created: bool
    changed: bool


def contacts_router(
    sessions: sessionmaker[Session], temporal, task_queue: str, auth, address_key: AddressKey
) -> APIRouter:
    router = APIRouter(dependencies=[Depends(auth)])

    @router.put("/v1/contacts/{contact_id}", response_model=ContactWritten)
    async def put_contact(body: ContactUpdate, contact_id: str = Path(max_length=128)) -> ContactWritten:
        """Fields left out stay as they are; consent changes are logged with `consent_wording`."""
        try:
            personal_id(contact_id)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        if not re.fullmatch(CONTACT_ID, contact_id):
            raise HTTPException(422, f"contact id {contact_id!r} must match {CONTACT_ID}")
        fields = ContactFields.model_validate(body.model_dump(exclude_unset=True, exclude={"consent_wording"}))
        item = ContactInput.for_id(contact_id, fields)
        summary, signals = await asyncio.to_thread(_write, sessions, item, body.consent_wording, address_key)
        await relay_now(temporal, sessions, task_queue, signals)  # stage journeys start and end at once
        return ContactWritten(id=contact_id, created=summary.created == 1, changed=summary.unchanged == 0)

    return router


def _write(
    sessions: sessionmaker[Session], item: ContactInput, wording: str | None, address_key: AddressKey
) -> tuple[WriteSummary, list[int]]:
    """The contact, and its stage move announced in the same transaction."""
    with sessions.begin() as session:
        summary = write_contacts(session, [item], source="api", wording=wording, address_key=address_key)
        signals = record_stage_moves(session, summary.stage_moves, f"api/{utcnow():%Y%m%dT%H%M%S%fZ}")
    return summary, signals
