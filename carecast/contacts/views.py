"""Stored contacts and preferences as the policy's plain views."""

from __future__ import annotations

from datetime import time

from carecast.campaign.durations import parse_duration
from carecast.channels.base import CHANNELS
from carecast.contacts.writer import DEFAULT_CONSENT
from carecast.policy.model import CapRule, ContactView, PreferenceView, QuietHours
from carecast.store.models import Contact, Preferences

# A contact's own limit counts everything but transactional, and holds back marketing.
CONTACT_LIMIT_COUNTS = frozenset({"care", "marketing"})


def contact_facts(contact: Contact) -> dict:
    """The contact as the filter language sees it: its columns and `attributes`."""
    return {column.key: getattr(contact, column.key) for column in Contact.__table__.columns}


def contact_view(contact: Contact) -> ContactView:
    region = (contact.attributes or {}).get("region")
    return ContactView(
        id=contact.id,
        email=contact.email,
        phone=contact.phone,
        timezone=contact.timezone,
        region=region.strip().upper() if isinstance(region, str) else None,
    )


def frequency_limit(prefs: Preferences | None) -> CapRule | None:
    """The contact's own cap ("at most 2 per 90d"), if they set one."""
    if prefs is None or not prefs.frequency_limit:
        return None
    limit = prefs.frequency_limit
    return CapRule("contact", int(limit["max"]), parse_duration(limit["per"]), categories=CONTACT_LIMIT_COUNTS)


def preference_view(prefs: Preferences | None) -> PreferenceView:
    if prefs is None:
        return PreferenceView(consent=dict(DEFAULT_CONSENT))
    quiet = None
    if prefs.quiet_hours_start and prefs.quiet_hours_end:
        quiet = QuietHours(time.fromisoformat(prefs.quiet_hours_start), time.fromisoformat(prefs.quiet_hours_end))
    return PreferenceView(
        consent={channel: bool(getattr(prefs, f"{channel}_consent")) for channel in CHANNELS},
        topics=dict(prefs.topics or {}),
        marketing=prefs.marketing_consent is not False,
        preferred_channels=tuple(prefs.preferred_channels or ()),
        quiet_hours=quiet,
        send_windows=tuple(prefs.send_windows or ()),
        frequency_limit=frequency_limit(prefs),
        paused_until=prefs.paused_until,
    )
