"""Writing validated contacts: create or update, change only what differs, log consent.

Every change of consent (per channel) or of a topic subscription appends a
consent record saying when, from where, and what the contact was shown, so
carecast can prove what a contact agreed to. Writing the same input twice
changes nothing and records nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from carecast.campaign.durations import format_duration
from carecast.channels.base import CHANNELS
from carecast.contacts.kept import (
    KEPT_SOURCE,
    AddressKey,
    as_preferences,
    kept_for,
    kept_wording,
    suppression_reason,
)
from carecast.contacts.schema import ALL_MARKETING, ContactFields, ContactInput, PreferencesInput
from carecast.contacts.suppressions import add_suppression
from carecast.store.models import Base, ConsentRecord, Contact, Preferences, utcnow

# Email is opt-out (CAN-SPAM); SMS and calls need express consent (TCPA), so they start off.
DEFAULT_CONSENT = {"email": True, "sms": False, "voice": False}
CONTACT_FIELDS = ("email", "phone", "timezone", "locale", "lifecycle_stage", "care_agent")
# The wording of a consent record made by an unsubscribe link or button, as opposed to a form save.
UNSUBSCRIBE_WORDING_PREFIX = "List-Unsubscribe ("


def unsubscribe_wording(topic: str | None) -> str:
    return f"{UNSUBSCRIBE_WORDING_PREFIX}{topic or 'all marketing'})"


@dataclass
class WriteSummary:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    # (contact id, old stage, new stage) for every contact whose lifecycle stage changed
    stage_moves: list[tuple[str, str | None, str | None]] = field(default_factory=list)

    def add(self, other: WriteSummary) -> None:
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.stage_moves += other.stage_moves


def new_preferences(contact_id: str) -> Preferences:
    return Preferences(
        contact_id=contact_id,
        email_consent=DEFAULT_CONSENT["email"],
        sms_consent=DEFAULT_CONSENT["sms"],
        voice_consent=DEFAULT_CONSENT["voice"],
        preferred_channels=[],
        topics={},
        marketing_consent=True,
        send_windows=[],
    )


def _identical(a: Any, b: Any) -> bool:
    """Equal and of the same types throughout: Python's 1 == True would keep a number where a bool is meant."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_identical(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(_identical, a, b))
    return a == b


def _set(row: Any, field: str, value: Any) -> bool:
    before = getattr(row, field)
    if _identical(before, value):
        return False
    setattr(row, field, value)
    if before == value:  # equal to Python, so the ORM would write nothing: it must (1 becomes true)
        flag_modified(row, field)
    return True


def _apply_contact(contact: Contact, item: ContactInput) -> bool:
    changed = False
    before = (contact.email, contact.phone)
    for name in CONTACT_FIELDS:
        if name in item.model_fields_set:
            changed |= _set(contact, name, getattr(item, name))
    if any(old is not None and old != new for old, new in zip(before, (contact.email, contact.phone), strict=True)):
        # a link sent to the old address must not turn anything on for the new one
        contact.links_version += 1
    if item.attributes:
        merged = {**(contact.attributes or {}), **item.attributes}
        changed |= _set(contact, "attributes", merged)
    return changed


def _apply_preferences(
    prefs: Preferences, given: PreferencesInput, records: list[dict], source: str, wording: str | None
) -> bool:
    """Applies what was given; appends a consent record (as a row dict) for each real change."""
    changed = False
    record = dict(contact_id=prefs.contact_id, source=source, wording=wording, recorded_at=utcnow())
    if given.consent is not None:
        for channel in CHANNELS:
            value = getattr(given.consent, channel)
            if value is not None and _set(prefs, f"{channel}_consent", value):
                records.append(dict(channel=channel, topic=None, granted=value, **record))
                changed = True
    if given.topics is not None:
        topics = dict(prefs.topics or {})
        for topic, subscribed in sorted(given.topics.items()):
            if topics.get(topic) == subscribed:
                continue
            if topics.get(topic, True) != subscribed:  # a missing topic counts as subscribed
                records.append(dict(channel=None, topic=topic, granted=subscribed, **record))
            topics[topic] = subscribed
        changed |= _set(prefs, "topics", topics)
    if given.marketing is not None and _set(prefs, "marketing_consent", given.marketing):
        records.append(dict(channel=None, topic=ALL_MARKETING, granted=given.marketing, **record))
        changed = True
    fields = given.model_fields_set
    if "preferred_channels" in fields:
        changed |= _set(prefs, "preferred_channels", given.preferred_channels or [])
    if "quiet_hours" in fields:
        quiet = given.quiet_hours
        changed |= _set(prefs, "quiet_hours_start", quiet.start if quiet else None)
        changed |= _set(prefs, "quiet_hours_end", quiet.end if quiet else None)
    if "send_windows" in fields:
        changed |= _set(prefs, "send_windows", given.send_windows or [])
    if "frequency_limit" in fields:
        limit = given.frequency_limit
        changed |= _set(
            prefs, "frequency_limit", {"max": limit.max, "per": format_duration(limit.per)} if limit else None
        )
    if "paused_until" in fields:
        changed |= _set(prefs, "paused_until", given.paused_until)
    return changed


def apply_kept_opt_outs(
    session: Session, key: AddressKey, readdressed: list[tuple[Contact, Preferences, list[str]]], records: list[dict]
) -> None:
    """Puts back in force the opt-outs kept for the addresses these contacts have just taken (never those they
    had, whose opt-outs they may have lifted since): a consent withdrawn or a topic left again, each with its
    consent record, and a suppression made again as it was."""
    kept = kept_for(session, key, [(contact.id, taken) for contact, _, taken in readdressed])
    for contact, prefs, _ in readdressed:
        for opt_out in kept.get(contact.id, ()):
            if (reason := suppression_reason(opt_out)) is not None:
                address = contact.email if opt_out.channel == "email" else contact.phone
                add_suppression(session, opt_out.channel, address, reason, KEPT_SOURCE)
            else:
                _apply_preferences(prefs, as_preferences(opt_out), records, KEPT_SOURCE, kept_wording(opt_out))


def _columns(row: Base) -> dict[str, Any]:
    return {column.key: getattr(row, column.key) for column in row.__table__.columns}


def write_contacts(
    session: Session,
    items: Sequence[ContactInput],
    *,
    source: str,
    wording: str | None = None,
    address_key: AddressKey | None,
) -> WriteSummary:
    """Creates or updates each contact with one query per table; ids must be unique in `items`.

    New contacts go in as bulk INSERTs (an import is mostly new contacts); existing
    ones are updated through the ORM, only where something changed. A contact given an
    address that opted out before its contact was forgotten takes those opt-outs
    (carecast/contacts/kept.py), so every caller that may create a contact or change an
    address passes the `address_key`; one that passes None and would is refused.
    """
    ids = [item.id for item in items]
    contacts = {c.id: c for c in session.scalars(select(Contact).where(Contact.id.in_(ids)))}
    preferences = {p.contact_id: p for p in session.scalars(select(Preferences).where(Preferences.contact_id.in_(ids)))}
    now = utcnow()
    summary = WriteSummary()
    new_contacts: list[Contact] = []
    new_preferences_rows: list[Preferences] = []
    records: list[dict[str, Any]] = []
    readdressed: list[tuple[Contact, Preferences, list[str]]] = []  # contacts and the addresses they just took
    for item in items:
        contact = contacts.get(item.id)
        prefs = preferences.get(item.id)
        old_stage = contact.lifecycle_stage if contact is not None else None
        old_addresses = (contact.email, contact.phone) if contact is not None else (None, None)
        if contact is None:
            contact = Contact(id=item.id, attributes={}, links_version=0, created_at=now, updated_at=now)
            _apply_contact(contact, item)
            new_contacts.append(contact)
            summary.created += 1
            changed = True
        else:
            changed = _apply_contact(contact, item)
        if contact.lifecycle_stage != old_stage:
            summary.stage_moves.append((item.id, old_stage, contact.lifecycle_stage))
        if prefs is None:
            prefs = new_preferences(item.id)
            prefs.updated_at = now
            if item.preferences is not None:
                _apply_preferences(prefs, item.preferences, records, source, wording)
            new_preferences_rows.append(prefs)
            changed = True
        elif item.preferences is not None:
            changed |= _apply_preferences(prefs, item.preferences, records, source, wording)
        taken = [a for a in (contact.email, contact.phone) if a is not None and a not in old_addresses]
        if taken:
            readdressed.append((contact, prefs, taken))
        if item.id in contacts:
            if changed:
                summary.updated += 1
            else:
                summary.unchanged += 1
    if readdressed:
        if address_key is None:
            raise ValueError("a write that gives contacts addresses needs the address key (carecast/contacts/kept.py)")
        apply_kept_opt_outs(session, address_key, readdressed, records)
    session.flush()  # updates of existing rows first, then the bulk inserts that may refer to them
    for model, rows in ((Contact, new_contacts), (Preferences, new_preferences_rows)):
        if rows:
            session.execute(insert(model.__table__), [_columns(row) for row in rows])
    if records:
        session.execute(insert(ConsentRecord.__table__), records)
    return summary


def create_if_missing(session: Session, contact_id: str, fields: ContactFields, *, source: str,
                      address_key: AddressKey) -> bool:  # fmt: skip
    """Creates the contact with these fields unless it exists (then nothing changes); whether it did."""
    if session.get(Contact, contact_id) is not None:
        return False
    write_contacts(session, [ContactInput.for_id(contact_id, fields)], source=source, address_key=address_key)
    return True
