"""A contact's data on request: their preference links revoked, everything exported, or all of it forgotten."""

from __future__ import annotations

from sqlalchemy.orm import Session

from carecast.store.models import Contact


class UnknownContact(LookupError):
    def __init__(self, contact_id: str) -> None:
        super().__init__(f"no contact {contact_id!r}")


def revoke_links(session: Session, contact_id: str) -> int:
    """Retires every preference link made so far: they still unsubscribe, but turn nothing on. The new version."""
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise UnknownContact(contact_id)
    contact.links_version += 1
    return contact.links_version
