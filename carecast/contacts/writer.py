"""Writing validated contacts: create or update, change only what differs, log consent.

Every change of consent (per channel) or of a topic subscription appends a
consent record saying when, from where, and what the contact was shown, so
carecast can prove what a contact agreed to. Writing the same input twice
changes nothing and records nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from carecast.channels.base import CHANNELS
from carecast.contacts.schema import ContactInput, PreferencesInput
from carecast.spec.durations import format_duration
from carecast.store.models import ConsentRecord, Contact, Preferences, utcnow

# Email is opt-out (CAN-SPAM); SMS and calls need express consent (TCPA), so they start off.
DEFAULT_CONSENT = {"email": True, "sms": False, "voice": False}
CONTACT_FIELDS = ("email", "phone", "timezone", "locale", "lifecycle_stage", "care_agent")


@dataclass
class WriteSummary:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def add(self, other: WriteSummary) -> None:
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged


def new_preferences(contact_id: str) -> Preferences:
    return Preferences(
        contact_id=contact_id,
        email_consent=DEFAULT_CONSENT["email"],
        sms_consent=DEFAULT_CONSENT["sms"],
        voice_consent=DEFAULT_CONSENT["voice"],
        preferred_channels=[],
        topics={},
        send_windows=[],
    )


def _set(row: Any, field: str, value: Any) -> bool:
    if getattr(row, field) == value:
        return False
    setattr(row, field, value)
    return True


def _apply_contact(contact: Contact, item: ContactInput) -> bool:
    changed = False
    for field in CONTACT_FIELDS:
        if field in item.model_fields_set:
            changed |= _set(contact, field, getattr(item, field))
    if item.attributes:
        merged = {**(contact.attributes or {}), **item.attributes}
        changed |= _set(contact, "attributes", merged)
    return changed


def _apply_preferences(
    session: Session, prefs: Preferences, given: PreferencesInput, source: str, wording: str | None
) -> bool:
    changed = False
    record = dict(contact_id=prefs.contact_id, source=source, wording=wording, recorded_at=utcnow())
    if given.consent is not None:
        for channel in CHANNELS:
            value = getattr(given.consent, channel)
            if value is not None and _set(prefs, f"{channel}_consent", value):
                session.add(ConsentRecord(channel=channel, granted=value, **record))
                changed = True
    if given.topics is not None:
        topics = dict(prefs.topics or {})
        for topic, subscribed in sorted(given.topics.items()):
            if topics.get(topic) == subscribed:
                continue
            if topics.get(topic, True) != subscribed:  # a missing topic counts as subscribed
                session.add(ConsentRecord(topic=topic, granted=subscribed, **record))
            topics[topic] = subscribed
        changed |= _set(prefs, "topics", topics)
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


def write_contacts(
    session: Session, items: Sequence[ContactInput], *, source: str, wording: str | None = None
) -> WriteSummary:
    """Creates or updates each contact in one round trip per table; ids must be unique in `items`."""
    ids = [item.id for item in items]
    contacts = {c.id: c for c in session.scalars(select(Contact).where(Contact.id.in_(ids)))}
    preferences = {p.contact_id: p for p in session.scalars(select(Preferences).where(Preferences.contact_id.in_(ids)))}
    summary = WriteSummary()
    changed: dict[str, bool] = {}
    for item in items:
        contact = contacts.get(item.id)
        if contact is None:
            session.add(contact := Contact(id=item.id, attributes={}))
        changed[item.id] = _apply_contact(contact, item)
    session.flush()  # contacts first: preferences and consent records refer to them
    for item in items:
        prefs = preferences.get(item.id)
        if prefs is None:
            session.add(prefs := new_preferences(item.id))
        if item.preferences is not None:
            changed[item.id] |= _apply_preferences(session, prefs, item.preferences, source, wording)
        if item.id not in contacts:
            summary.created += 1
        elif changed[item.id]:
            summary.updated += 1
        else:
            summary.unchanged += 1
    session.flush()
    return summary
