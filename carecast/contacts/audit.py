"""Finding the preference-center saves that carecast itself got wrong, from the consent trail.

Before commit 95eaf25 a POST to `/u/{token}` that was not byte for byte the urlencoded
`List-Unsubscribe=One-Click` body (a mailbox provider's multipart one-click, an
empty body, extra fields) was saved as the form with every box unticked: every
channel withdrawn, every topic left, quiet hours and the preferred channel
cleared, and marketing switched on. Its fingerprint in `consent_records` is a
contact's last preference-center save that withdrew channels and left the
contact with no channel at all while marketing stayed or became on; a person
who wants nothing more from us also ticks "unsubscribe from all marketing".

Consent records are written only on a change, so a channel's value at any
instant follows from its trail: the last record up to then, else the opposite
of the first record after it, else (no record at all) its value today. A later
save that changed no consent (quiet hours only) leaves no record; the
preferences' own `updated_at` shows it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, not_, or_, select
from sqlalchemy.orm import Session

from carecast.channels.base import CHANNELS
from carecast.contacts.schema import ALL_MARKETING
from carecast.contacts.writer import UNSUBSCRIBE_WORDING_PREFIX
from carecast.store.models import ConsentRecord, Contact, Delivery, Preferences

# A form save, not the page's one-click "unsubscribe from this topic" button (same source, own wording).
FORM_SAVE = and_(
    ConsentRecord.source == "preference_center",
    or_(ConsentRecord.wording.is_(None), not_(ConsentRecord.wording.startswith(UNSUBSCRIBE_WORDING_PREFIX))),
)
CONTACTS_PER_QUERY = 500
# The save itself stamps the preferences a moment after its consent records.
SAME_SAVE = timedelta(seconds=1)


@dataclass(frozen=True)
class SuspectSave:
    """A contact whose last preference-center save looks like the wiping defect."""

    contact_id: str
    saved_at: datetime
    channels_withdrawn: list[str]
    topics_left: list[str]
    marketing_switched_on: bool  # False: it was on already and stayed on
    channels_before: list[str]  # what the contact had chosen just before the save
    marketing_before: bool
    last_email_before: str | None  # the campaign of the last email sent before it: where the link likely was
    changed_since_by: list[str]  # sources of consent changes after the save, e.g. ["api"]
    preferences_changed_since: bool  # any later change, consent or not (a save of quiet hours only)
    channels_now: list[str]
    marketing_now: bool

    def line(self) -> str:
        """One line for an operator to read."""
        if self.changed_since_by:
            since = f"changed since by {', '.join(self.changed_since_by)}"
        else:
            since = "preferences changed since" if self.preferences_changed_since else "unchanged since"
        return (
            f"{self.contact_id}  saved {self.saved_at:%Y-%m-%d %H:%M:%S}Z"
            f" · withdrew {', '.join(self.channels_withdrawn)}"
            f" · left topics {', '.join(self.topics_left) or 'none'}"
            f" · marketing {'switched on' if self.marketing_switched_on else 'left on'}"
            f" · before: {_reach(self.channels_before, self.marketing_before)}"
            f" · last email before: {self.last_email_before or 'none'}"
            f" · now: {_reach(self.channels_now, self.marketing_now)} · {since}"
        )


def suspect_saves(session: Session) -> list[SuspectSave]:
    """Every contact whose last preference-center save left no channel and marketing on. Reads only."""
    withdrawals = _channel_records_of_last_saves(session)
    saved_at = {
        contact_id: records[0].recorded_at
        for contact_id, records in withdrawals.items()
        if any(not r.granted for r in records) and not any(r.granted for r in records)
    }
    candidates = sorted(saved_at)
    found: list[SuspectSave] = []
    for start in range(0, len(candidates), CONTACTS_PER_QUERY):
        found.extend(_judge(session, candidates[start : start + CONTACTS_PER_QUERY], saved_at))
    return found


def _channel_records_of_last_saves(session: Session) -> dict[str, list[ConsentRecord]]:
    """The channel records of each contact's last form save (a save's records share one recorded_at)."""
    last = (
        select(ConsentRecord.contact_id, func.max(ConsentRecord.recorded_at).label("saved_at"))
        .where(FORM_SAVE)
        .group_by(ConsentRecord.contact_id)
        .subquery()
    )
    rows = session.scalars(
        select(ConsentRecord)
        .join(last, and_(ConsentRecord.contact_id == last.c.contact_id, ConsentRecord.recorded_at == last.c.saved_at))
        .where(FORM_SAVE, ConsentRecord.channel.is_not(None))
    )
    found: dict[str, list[ConsentRecord]] = defaultdict(list)
    for record in rows:
        found[record.contact_id].append(record)
    return found


def _judge(session: Session, ids: Sequence[str], saves: dict[str, datetime]) -> Iterator[SuspectSave]:
    contacts = {c.id: c for c in session.scalars(select(Contact).where(Contact.id.in_(ids)))}
    preferences = {p.contact_id: p for p in session.scalars(select(Preferences).where(Preferences.contact_id.in_(ids)))}
    trails: dict[str, list[ConsentRecord]] = defaultdict(list)
    in_time_order = (
        select(ConsentRecord)
        .where(ConsentRecord.contact_id.in_(ids))
        .order_by(ConsentRecord.recorded_at, ConsentRecord.id)
    )
    for record in session.scalars(in_time_order):
        trails[record.contact_id].append(record)
    emails = session.execute(
        select(Delivery.contact_id, Delivery.sent_at, Delivery.campaign_id)
        .where(Delivery.contact_id.in_(ids), Delivery.channel == "email", Delivery.sent_at.is_not(None))
        .order_by(Delivery.sent_at)
    ).all()
    for contact_id in ids:
        contact, prefs = contacts.get(contact_id), preferences.get(contact_id)
        if contact is None or prefs is None:
            continue
        trail, saved_at = trails[contact_id], saves[contact_id]
        batch = [r for r in trail if r.recorded_at == saved_at]
        addresses = {"email": contact.email, "sms": contact.phone, "voice": contact.phone}
        today = {c: bool(getattr(prefs, f"{c}_consent")) for c in CHANNELS}
        channels = {c: _value_around(_about(trail, c, None), saved_at, today[c]) for c in CHANNELS}
        marketing_now = prefs.marketing_consent is not False
        marketing_before, marketing_after = _value_around(_about(trail, None, ALL_MARKETING), saved_at, marketing_now)
        if any(channels[c][1] for c in CHANNELS if addresses[c]) or not marketing_after:
            continue
        yield SuspectSave(
            contact_id=contact_id,
            saved_at=saved_at,
            channels_withdrawn=[c for c in CHANNELS if any(r.channel == c and not r.granted for r in batch)],
            topics_left=sorted(r.topic for r in batch if r.topic not in (None, ALL_MARKETING) and not r.granted),
            marketing_switched_on=any(r.topic == ALL_MARKETING and r.granted for r in batch),
            channels_before=[c for c in CHANNELS if channels[c][0]],
            marketing_before=marketing_before,
            last_email_before=next(
                (campaign for cid, at, campaign in reversed(emails) if cid == contact_id and at <= saved_at), None
            ),
            changed_since_by=sorted({r.source for r in trail if r.recorded_at > saved_at}),
            preferences_changed_since=prefs.updated_at > saved_at + SAME_SAVE,
            channels_now=[c for c in CHANNELS if today[c] and addresses[c]],
            marketing_now=marketing_now,
        )


def _reach(channels: list[str], marketing: bool) -> str:
    return (", ".join(channels) or "no channel") + ("" if marketing else ", no marketing")


def _about(trail: Sequence[ConsentRecord], channel: str | None, topic: str | None) -> list[ConsentRecord]:
    return [r for r in trail if (r.channel, r.topic) == (channel, topic)]


def _value_around(trail: Sequence[ConsentRecord], at: datetime, today: bool) -> tuple[bool, bool]:
    """(just before, just after) `at`, from one channel's (or topic's) records in time order."""

    def value(before: Sequence[ConsentRecord], after: Sequence[ConsentRecord]) -> bool:
        if before:
            return before[-1].granted
        return not after[0].granted if after else today

    return (
        value([r for r in trail if r.recorded_at < at], [r for r in trail if r.recorded_at >= at]),
        value([r for r in trail if r.recorded_at <= at], [r for r in trail if r.recorded_at > at]),
    )
