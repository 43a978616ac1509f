"""`PUT /v1/contacts/{id}`: create or update one contact and its preferences."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session, sessionmaker

from carecast.contacts.schema import CONTACT_ID, ContactFields, ContactInput
from carecast.contacts.writer import write_contacts


class ContactUpdate(ContactFields):
    consent_wording: str | None = Field(
        default=None, max_length=2000, description="what the contact was shown when giving or withdrawing consent"
    )


class ContactWritten(BaseModel):
    id: str
    created: bool
    changed: bool


def contacts_router(sessions: sessionmaker[Session], auth) -> APIRouter:
    router = APIRouter(dependencies=[Depends(auth)])

    @router.put("/v1/contacts/{contact_id}", response_model=ContactWritten)
    def put_contact(body: ContactUpdate, contact_id: str = Path(pattern=CONTACT_ID)) -> ContactWritten:
        """Fields left out stay as they are; consent changes are logged with `consent_wording`."""
        fields = ContactFields.model_validate(body.model_dump(exclude_unset=True, exclude={"consent_wording"}))
        item = ContactInput.for_id(contact_id, fields)
        with sessions.begin() as session:
            summary = write_contacts(session, [item], source="api", wording=body.consent_wording)
        return ContactWritten(id=contact_id, created=summary.created == 1, changed=summary.unchanged == 0)

    return router
