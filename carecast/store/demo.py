"""A few demo contacts for a fresh embedded store, so `carecast events send c1 signed_up` works at once."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from carecast.store.models import Contact, Preferences

DEMO_CONTACTS = [
    dict(
        id="c1",
        email="ada@example.com",
        phone="+14155550101",
        timezone="America/Los_Angeles",
        locale="en-US",
        lifecycle_stage="new",
        care_agent="Maya from Acme care",
        # what the shipped back_in_stock broadcast looks for, so `carecast broadcast start back_in_stock` reaches her
        attributes={"first_name": "Ada", "wishlist_in_stock": True, "wishlist_item": "the Trail Runner 2 in blue"},
    ),
    dict(
        id="c2",
        email="bruno@example.com",
        phone="+33612345678",
        timezone="Europe/Paris",
        locale="fr-FR",
        lifecycle_stage="active",
        care_agent="Maya from Acme care",
        attributes={"first_name": "Bruno"},
    ),
    dict(
        id="c3",
        email=None,
        phone="+442071838750",
        timezone="Europe/London",
        locale="en-GB",
        lifecycle_stage="loyal",
        care_agent="Maya from Acme care",
        attributes={"first_name": "Chloe"},
    ),
]


def seed_demo_contacts(session: Session) -> list[str]:
    """Adds the demo contacts when the store has no contacts at all; returns the ids added."""
    if session.scalar(select(Contact.id).limit(1)) is not None:
        return []
    for fields in DEMO_CONTACTS:
        session.add(Contact(**fields))
        # c3 has no email: its preferences allow SMS, so it shows the channel fallback.
        session.add(Preferences(contact_id=fields["id"], email_consent=True, sms_consent=fields["email"] is None))
    return [fields["id"] for fields in DEMO_CONTACTS]
