"""A contact's rights over their data: their preference links revoked, everything
exported (GDPR article 15), or all of it forgotten (article 17).

Forgetting erases the contact, their preferences and consent trail, their events and
(by the caller, who knows the folder) their outbox files, and ends their running
journeys through the outbox of journey signals. Their deliveries and journey records
stay, for the counts of reports and caps: they hold the contact id, but no address, no
message and no event data. Opt-outs still in force and suppressions of their addresses are kept under a keyed
hash of the address (carecast/contacts/kept.py), so a later import of the same address
is still not written to as it asked not to be.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.orm import Session

from carecast.contacts.kept import SUPPRESSION, AddressKey, addresses_of
from carecast.intake.outgoing import FAST_PATH_LEASE
from carecast.store.models import (
    Base,
    ConsentRecord,
    Contact,
    Delivery,
    DeliveryEvent,
    Enrolment,
    Event,
    JourneySignal,
    KeptOptOut,
    Preferences,
    Suppression,
    utcnow,
)


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


def _plain(row: Base, leave: tuple[str, ...] = ()) -> dict[str, Any]:
    values = {c.key: getattr(row, c.key) for c in row.__table__.columns if c.key not in leave}
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in values.items()}


def export(session: Session, contact_id: str) -> dict[str, Any]:
    """Everything carecast keeps about the contact, as JSON-ready data (article 15)."""
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise UnknownContact(contact_id)
    preferences = session.get(Preferences, contact_id)
    of_contact = (ConsentRecord, Event, Enrolment, Delivery)
    rows = {
        model: session.scalars(select(model).where(model.contact_id == contact_id).order_by(model.id)).all()
        for model in of_contact
    }
    suppressed = session.scalars(select(Suppression).where(Suppression.address.in_(list(addresses_of(contact)))))
    return {
        "contact": _plain(contact),
        "preferences": _plain(preferences, leave=("contact_id",)) if preferences else None,
        "consent_records": [_plain(r, leave=("id", "contact_id")) for r in rows[ConsentRecord]],
        "suppressions": [_plain(r, leave=("id",)) for r in suppressed],
        "events": [_plain(r, leave=("id", "contact_id")) for r in rows[Event]],
        "journeys": [_plain(r, leave=("id", "contact_id", "listens_to")) for r in rows[Enrolment]],
        "messages": [_plain(r, leave=("contact_id", "idempotency_key")) for r in rows[Delivery]],
    }


@dataclass
class Forgotten:
    """What forgetting did, for the operator's record (no address in it)."""

    kept_opt_outs: int = 0
    events: int = 0
    consent_records: int = 0
    journeys_told: list[int] = field(default_factory=list)  # stop signals for the relay to deliver
    message_ids: list[int] = field(default_factory=list)  # the deliveries whose outbox files go too


def forget(session: Session, contact_id: str, key: AddressKey) -> Forgotten:
    """Erases the contact (article 17); see the module's docstring for what is kept and how."""
    contact = session.get(Contact, contact_id, with_for_update=True)
    if contact is None:
        raise UnknownContact(contact_id)
    now = utcnow()
    addresses = addresses_of(contact)
    done = Forgotten()
    kept = _opt_outs_in_force(session, contact_id, addresses, key, now)
    kept += _suppressions_kept(session, contact_id, addresses, key, now)
    if kept:
        session.execute(insert(KeptOptOut), kept)
    done.kept_opt_outs = len(kept)
    running = session.execute(
        select(Enrolment.id, Enrolment.workflow_id).where(
            Enrolment.contact_id == contact_id, Enrolment.ended_at.is_(None)
        )
    ).all()
    signal = dict(kind="stop", signal_key=f"forget/{now.isoformat()}", occurred_at=now, created_at=now,
                  next_attempt_at=now + FAST_PATH_LEASE, attempts=0)  # fmt: skip
    stops = [dict(enrolment_id=eid, workflow_id=wid, **signal) for eid, wid in running]
    if stops:
        done.journeys_told = list(session.scalars(insert(JourneySignal).returning(JourneySignal.id), stops))
    messages = session.scalars(select(Delivery).where(Delivery.contact_id == contact_id)).all()
    for message in messages:
        message.status_history = [_bare(entry) for entry in message.status_history or []]
    done.message_ids = [message.id for message in messages]
    if done.message_ids:  # what happened to them stays counted; the links clicked may name the person
        session.execute(update(DeliveryEvent).where(DeliveryEvent.delivery_id.in_(done.message_ids)).values(url=None))
    done.events = session.execute(delete(Event).where(Event.contact_id == contact_id)).rowcount
    done.consent_records = session.execute(delete(ConsentRecord).where(ConsentRecord.contact_id == contact_id)).rowcount
    session.execute(delete(Preferences).where(Preferences.contact_id == contact_id))
    session.delete(contact)
    return done


# What a message's history keeps of each entry once its contact is forgotten: the course of the message, not the
# providers' words (a bounce quotes the address; an error may too) nor clicked links.
BARE_HISTORY = ("status", "at", "event", "kind")
CODE = re.compile(r"[a-z0-9_:.]{1,64}")
# Consent sources whose wording is the contact's own words (an SMS reply), not ours: erased with them.
OWN_WORDS = {"sms_keyword"}
ERASED_WORDS = "an SMS reply, its words erased with the contact"


def _bare(entry: dict[str, Any]) -> dict[str, Any]:
    bare = {k: v for k, v in entry.items() if k in BARE_HISTORY}
    if isinstance(entry.get("reason"), str) and CODE.fullmatch(entry["reason"]):
        bare["reason"] = entry["reason"]  # ours (`provider_rejected`), never a provider's sentence
    return bare


def _opt_outs_in_force(
    session: Session, contact_id: str, addresses: dict[str, tuple[str, ...]], key: AddressKey, now: datetime
) -> list[dict[str, Any]]:
    """The latest word on each channel and topic, where it is "no", kept under each address it concerns."""
    latest: dict[tuple[str | None, str | None], ConsentRecord] = {}
    trail = select(ConsentRecord).where(ConsentRecord.contact_id == contact_id).order_by(ConsentRecord.id)
    for record in session.scalars(trail):
        latest[(record.channel, record.topic)] = record
    kept = []
    for (channel, topic), record in sorted(latest.items(), key=lambda item: item[1].id):
        if record.granted:
            continue
        wording = ERASED_WORDS if record.source in OWN_WORDS else record.wording
        for address, channels in addresses.items():
            if channel is None or channel in channels:
                kept.append(dict(address_hash=key.address(address), channel=channel, topic=topic,
                                 source=record.source, wording=wording, recorded_at=record.recorded_at,
                                 kept_at=now))  # fmt: skip
    return kept


def _suppressions_kept(
    session: Session, contact_id: str, addresses: dict[str, tuple[str, ...]], key: AddressKey, now: datetime
) -> list[dict[str, Any]]:
    """Suppressions of addresses no other contact has become kept opt-outs of their channel; the rest stay."""
    if not addresses:
        return []
    shared = set(
        session.scalars(select(Contact.email).where(Contact.id != contact_id, Contact.email.in_(list(addresses)))).all()
        + session.scalars(
            select(Contact.phone).where(Contact.id != contact_id, Contact.phone.in_(list(addresses)))
        ).all()
    )
    alone = [a for a in addresses if a not in shared]
    rows = session.scalars(select(Suppression).where(Suppression.address.in_(alone))).all() if alone else []
    kept = [
        dict(address_hash=key.address(r.address), channel=r.channel, topic=None, source=f"{SUPPRESSION}:{r.reason}",
             wording=None, recorded_at=r.created_at, kept_at=now)
        for r in rows
    ]  # fmt: skip
    if rows:
        session.execute(delete(Suppression).where(or_(*(Suppression.id == r.id for r in rows))))
    return kept
