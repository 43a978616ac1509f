"""Opt-outs that outlive an erased contact, kept under a keyed hash of the address.

When a contact is forgotten (GDPR article 17, `carecast contacts forget`), carecast
must still be able to prove that an address opted out and must not write to it again
as if it never had. So each opt-out still in force, and each suppression of an address
no other contact uses, is kept as a `KeptOptOut` under an HMAC-SHA256 of the address
with a key derived from the server's secret: the address itself is gone, and a copy of
the database alone cannot tell which addresses they were. A contact created later with
the same address, or given it, takes those opt-outs again: each with a consent record of
source `kept_opt_out` quoting what was kept, and a suppression made again as it was.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from carecast.contacts.schema import ALL_MARKETING, ConsentInput, PreferencesInput
from carecast.store.models import Contact, KeptOptOut

KEPT_SOURCE = "kept_opt_out"
SUPPRESSION = "suppression"  # a kept row's source `suppression:<reason>` stands for a suppression
# The channels an address carries: an email address, or a phone number for texts and calls.
ADDRESS_CHANNELS = {"email": ("email",), "phone": ("sms", "voice")}


class AddressKey:
    """Keyed hashes of addresses, under a key derived from the server's secret (and its previous ones)."""

    def __init__(self, secret: str, previous: Sequence[str] = ()) -> None:
        self._keys = [hashlib.sha256(b"carecast kept addresses\0" + s.encode()).digest() for s in (secret, *previous)]

    def address(self, address: str) -> str:
        """The hash kept from now on. An email address is hashed whatever its case, as mail systems take it."""
        return self.every_hash(address)[0]

    def every_hash(self, address: str) -> list[str]:
        """The address's hash under the current secret, then under each previous one (kept before a change)."""
        folded = address.casefold() if "@" in address else address
        return ["hmac-sha256:" + hmac.digest(key, folded.encode(), "sha256").hex() for key in self._keys]


def addresses_of(contact: Contact) -> dict[str, tuple[str, ...]]:
    """The contact's addresses, each with the channels it carries."""
    return {a: ADDRESS_CHANNELS[field] for field in ADDRESS_CHANNELS if (a := getattr(contact, field))}


def kept_for(
    session: Session, key: AddressKey, taken: Iterable[tuple[str, Iterable[str]]]
) -> dict[str, list[KeptOptOut]]:
    """contact id -> the opt-outs kept for the addresses it has just taken (one query for them all)."""
    hashes: dict[str, list[str]] = {}
    for contact_id, addresses in taken:
        for address in addresses:
            for digest in key.every_hash(address):
                hashes.setdefault(digest, []).append(contact_id)
    if not hashes:
        return {}
    found: dict[str, list[KeptOptOut]] = {}
    for row in session.scalars(select(KeptOptOut).where(KeptOptOut.address_hash.in_(list(hashes)))):
        for contact_id in hashes[row.address_hash]:
            found.setdefault(contact_id, []).append(row)
    return found


def suppression_reason(kept: KeptOptOut) -> str | None:
    """The reason of the suppression this kept row stands for (`suppression:<reason>`); None for an opt-out."""
    prefix, _, reason = kept.source.partition(":")
    return reason if prefix == SUPPRESSION and reason else None


def as_preferences(kept: KeptOptOut) -> PreferencesInput:
    """The preference change that puts a kept opt-out in force again."""
    if kept.channel is not None:
        return PreferencesInput(consent=ConsentInput(**{kept.channel: False}))
    if kept.topic == ALL_MARKETING:
        return PreferencesInput(marketing=False)
    return PreferencesInput(topics={kept.topic: False})


def kept_wording(kept: KeptOptOut) -> str:
    said = f": {kept.wording}" if kept.wording else ""
    return f"kept after erasure ({kept.source}, {kept.recorded_at:%Y-%m-%d}){said}"
