"""`PUT /v1/contacts/{id}`: create or update one contact and its preferences."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session, sessionmaker

from carecast.contacts.schema import CONTACT_ID, ContactFields, ContactInput
from carecast.contacts.writer import write_contacts
from carecast.enrolment import announce_stage_change
from carecast.store.models import utcnow


class ContactUpdate(ContactFields):
    consent_wording: str | None = Field(
        default=None, max_length=2000, description="what the contact was shown when giving or withdrawing consent"
    )


class ContactWritten(BaseModel):
    id: str
    created: bool
    changed: bool


def contacts_router(sessions: sessionmaker[Session], temporal, task_queue: str, auth) -> APIRouter:
    router = APIRouter(dependencies=[Depends(auth)])

    @router.put("/v1/contacts/{contact_id}", response_model=ContactWritten)
    async def put_contact(body: ContactUpdate, contact_id: str = Path(pattern=CONTACT_ID)) -> ContactWritten:
        """Fields left out stay as they are; consent changes are logged with `consent_wording`."""
        fields = ContactFields.model_validate(body.model_dump(exclude_unset=True, exclude={"consent_wording"}))
        item = ContactInput.for_id(contact_id, fields)
        with sessions.begin() as session:
            summary = write_contacts(session, [item], source="api", wording=body.consent_wording)
        if summary.stage_moves:  # stage journeys start and end at once, not at the next recompute
            client = await temporal()
            occasion = f"api/{utcnow():%Y%m%dT%H%M%S%fZ}"
            for moved, old, new in summary.stage_moves:
                await announce_stage_change(client, sessions, task_queue, moved, old, new, occasion)
        return ContactWritten(id=contact_id, created=summary.created == 1, changed=summary.unchanged == 0)

    return router
