"""Suppressed addresses: no campaign may use them, whoever the contact.

Reasons: `hard_bounce`, `spam_complaint`, `stop` (an SMS STOP), `invalid_address`,
`manual`. Addresses are normalised the same way as contacts' addresses, so a
suppression always matches the stored address it means.
"""

from __future__ import annotations

from typing import Literal

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.orm import Session

from carecast.contacts.schema import ContactFields, first_error
from carecast.store.models import Suppression, utcnow
from carecast.store.writes import upsert

Reason = Literal["hard_bounce", "spam_complaint", "stop", "invalid_address", "manual"]
REASONS: tuple[str, ...] = TypeAdapter(Reason).json_schema()["enum"]


def normalised_address(channel: str, address: str) -> str:
    """The stored form of an address on a channel; ValueError says why it is not one."""
    field = "email" if channel == "email" else "phone"
    if channel not in ("email", "sms", "voice"):
        raise ValueError(f"unknown channel {channel!r}; use email, sms or voice")
    try:
        return getattr(ContactFields.model_validate({field: address}), field)
    except ValidationError as exc:
        raise ValueError(first_error(exc)) from None


def suppress(session: Session, channel: str, address: str, reason: str, source: str) -> bool:
    """Suppresses the address on the channel; returns False when it already was."""
    return add_suppression(session, channel, normalised_address(channel, address), reason, source)


def add_suppression(session: Session, channel: str, address: str, reason: str, source: str) -> bool:
    """`suppress` for an address already in its stored form (a contact's, or one a provider refused)."""
    if reason not in REASONS:
        raise ValueError(f"unknown reason {reason!r}; use one of {', '.join(REASONS)}")
    row = dict(channel=channel, address=address, reason=reason, source=source, created_at=utcnow())
    return upsert(session, Suppression, [row], conflict_columns=["channel", "address"]) == 1
