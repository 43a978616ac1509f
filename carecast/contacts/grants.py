"""What a change of preferences would turn on, as opposed to off.

Turning something off is always the contact's right, from any link, however old.
Turning something on — consent on a channel, a topic, marketing, fewer quiet hours,
an earlier end to a pause — widens what carecast may send, so the preference center
takes it only from a fresh link (carecast/render/links.py `Link.may_grant`).
"""

from __future__ import annotations

from datetime import datetime, time

from carecast.channels.base import CHANNELS
from carecast.contacts.schema import PreferencesInput, QuietHoursInput
from carecast.policy.model import PreferenceView, QuietHours


def grants(now: PreferenceView, given: PreferencesInput, at: datetime) -> list[str]:
    """What `given` would turn on, in words for a log (empty when it only narrows or keeps)."""
    found: list[str] = []
    if given.consent is not None:
        found += [f"{c} consent" for c in CHANNELS if getattr(given.consent, c) and not now.consent.get(c, False)]
    for topic, subscribed in sorted((given.topics or {}).items()):
        if subscribed and not now.topics.get(topic, True):
            found.append(f"topic {topic}")
    if given.marketing and not now.marketing:
        found.append("marketing")
    fields = given.model_fields_set
    if "quiet_hours" in fields and now.quiet_hours and not _covers(given.quiet_hours, now.quiet_hours):
        found.append("shorter quiet hours")
    paused = now.paused_until if now.paused_until and now.paused_until > at else None
    if "paused_until" in fields and paused and (given.paused_until is None or given.paused_until < paused):
        found.append("an earlier end to the pause")
    if "send_windows" in fields and list(given.send_windows or ()) != list(now.send_windows):
        found.append("other send windows")
    if "frequency_limit" in fields and now.frequency_limit is not None:
        found.append("another frequency limit")
    return found


def _covers(new: QuietHoursInput | None, old: QuietHours) -> bool:
    """Whether the new quiet hours keep every quiet minute of the old ones."""
    return new is not None and QuietHours(time.fromisoformat(new.start), time.fromisoformat(new.end)).covers(old)
