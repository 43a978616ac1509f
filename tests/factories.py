"""Small builders for test data."""

from __future__ import annotations

from carecast.store.models import Contact, Preferences


def add_contact(session, contact_id="c-1", *, email="ada@example.com", phone="+14155550101",
                email_consent=True, sms_consent=False, preferred=(), **fields) -> Contact:  # fmt: skip
    contact = Contact(
        id=contact_id, email=email, phone=phone, attributes=fields.pop("attributes", {"first_name": "Ada"}), **fields
    )
    session.add(contact)
    session.add(
        Preferences(
            contact_id=contact_id,
            email_consent=email_consent,
            sms_consent=sms_consent,
            preferred_channels=list(preferred),
        )
    )
    return contact
