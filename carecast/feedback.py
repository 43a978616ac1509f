"""What providers tell us after a send, applied to the store once each.

SendGrid's event webhook and Twilio's status callbacks move a delivery past
`sent` (delivered, bounced, dropped, undelivered, not answered) and, for
bounces, complaints, opt-outs and refused numbers, suppress the address or
change the contact's preferences with a consent record. Each callback is
applied at most once: its id goes into `provider_events` in the same
transaction as its effect. Inbound SMS keywords (STOP, START, HELP) are read
here too; callers turn every inbound SMS into an `sms_replied` event.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from carecast.contacts.schema import ConsentInput, ContactInput, PreferencesInput
from carecast.contacts.suppressions import add_suppression, normalised_address
from carecast.contacts.writer import write_contacts
from carecast.delivery import ledger
from carecast.delivery.events import SENDGRID_KINDS, TWILIO_KINDS, News, add_event, answered
from carecast.intake.replies import meaning
from carecast.store.models import Contact, Delivery, ProviderEvent, Suppression, utcnow
from carecast.store.writes import upsert

log = logging.getLogger(__name__)

# SendGrid event → (delivery status or None to only note it, suppression reason or None)
SENDGRID_EVENTS: dict[str, tuple[str | None, str | None]] = {
    "processed": (None, None),
    "deferred": (None, None),
    "delivered": ("delivered", None),
    "bounce": ("bounced", "hard_bounce"),
    "dropped": ("dropped", None),
    "spamreport": (None, "spam_complaint"),
    "unsubscribe": (None, None),
    "group_unsubscribe": (None, None),
    "group_resubscribe": (None, None),
    "open": (None, None),
    "click": (None, None),
}
# Twilio MessageStatus / CallStatus → delivery status (None: only noted)
TWILIO_STATUSES: dict[str, str | None] = {
    "accepted": None, "scheduled": None, "queued": None, "sending": None, "sent": None, "initiated": None,
    "ringing": None, "in-progress": None, "delivered": "delivered", "read": "delivered", "completed": "delivered",
    "undelivered": "undelivered", "failed": "undelivered", "canceled": "undelivered", "busy": "not_answered",
    "no-answer": "not_answered",
}  # fmt: skip
# Twilio ErrorCodes on a failed message that mean the number must not be used again.
TWILIO_SUPPRESSING_ERRORS = {"21610": "stop", "30005": "invalid_address", "30006": "invalid_address",
                             "21211": "invalid_address", "21614": "invalid_address"}  # fmt: skip


@dataclass
class FeedbackSummary:
    applied: int = 0
    duplicates: int = 0
    unknown_delivery: int = 0
    statuses: dict[str, int] = field(default_factory=dict)


def _first_time(session: Session, provider: str, event_id: str, kind: str, delivery_id: int | None) -> bool:
    row = dict(provider=provider, event_id=event_id, kind=kind, delivery_id=delivery_id, received_at=utcnow())
    return upsert(session, ProviderEvent, [row], conflict_columns=["provider", "event_id"]) == 1


def _note(delivery: Delivery, kind: str, status: str | None, **details: Any) -> None:
    """Joins the provider's news to the delivery's history; it moves the status only where the ledger allows
    (news of a message never handed over, say a `skipped` one, is noted and changes nothing)."""
    if status is not None and not ledger.may_move(delivery.status, status):
        status = None
    entry = {"status": status or delivery.status, "event": kind, "at": utcnow().isoformat()}
    entry.update({k: v for k, v in details.items() if v not in (None, "")})
    if status is not None:
        if delivery.status == ledger.Status.SENDING:
            delivery.reason = None  # `claimed` / `handing_over` describe an attempt, which the news settles
        delivery.status, delivery.retry_at = status, None  # the provider has it: nothing waits any more
    delivery.status_history = [*(delivery.status_history or []), entry]


def _change_preferences(session: Session, contact_id: str, source: str, wording: str, **given: Any) -> None:
    item = ContactInput(id=contact_id, preferences=PreferencesInput(**given))
    write_contacts(session, [item], source=source, wording=wording, address_key=None)


def _when(event: Mapping[str, Any]) -> datetime:
    """When SendGrid says the event happened (its `timestamp`, Unix seconds), or now."""
    try:
        return datetime.fromtimestamp(int(event["timestamp"]), UTC)
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        return utcnow()


def _delivery_id(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def apply_sendgrid_events(
    session: Session, events: Iterable[Mapping[str, Any]], topics: Mapping[str, str]
) -> FeedbackSummary:
    """Applies a verified batch; `topics` maps campaign id → topic (for group unsubscribes)."""
    summary, news = FeedbackSummary(), News()
    for event in events:
        kind = str(event.get("event", ""))
        delivery_id = _delivery_id(event.get("delivery_id"))
        event_id = str(event.get("sg_event_id") or "")
        if kind not in SENDGRID_EVENTS or not event_id:
            continue
        if not _first_time(session, "sendgrid", event_id, kind, delivery_id):
            summary.duplicates += 1
            continue
        delivery = session.get(Delivery, delivery_id) if delivery_id is not None else None
        if delivery is None:
            if _apply_to_address(session, kind, event):
                summary.applied += 1
                summary.statuses[kind] = summary.statuses.get(kind, 0) + 1
            else:
                summary.unknown_delivery += 1
            continue
        status, _ = SENDGRID_EVENTS[kind]
        suppression = _sendgrid_suppression(kind, event)
        contact = session.get(Contact, delivery.contact_id)
        url = without_tokens(str(event["url"])) if event.get("url") and contact is not None else None
        if contact is None:  # forgotten: the message's course is noted, never the provider's words about the person
            _note(delivery, kind, status)
        else:
            _note(delivery, kind, status, reason=event.get("reason"), url=url)
        if kind in SENDGRID_KINDS:
            machine = kind == "open" and event.get("sg_machine_open") is True
            bounce_type = str(event["type"])[:64] if kind == "bounce" and event.get("type") else None
            kind_of_row = "machine_opened" if machine else SENDGRID_KINDS[kind]
            news.add(delivery, kind_of_row, _when(event), url=url, reason=bounce_type)
        if suppression and contact is not None and contact.email:
            add_suppression(session, "email", contact.email, suppression, f"sendgrid:{kind}")
        if contact is not None:
            _sendgrid_preferences(session, contact.id, kind, topics.get(delivery.campaign_id))
        summary.applied += 1
        summary.statuses[kind] = summary.statuses.get(kind, 0) + 1
    news.write(session)
    return summary


# Query parameters whose values are credentials; their names are kept, their values are not.
SECRET_PARAMETER = re.compile(r"token|sig|signature|key|auth|code|session|secret|password", re.IGNORECASE)


def without_tokens(url: str) -> str:
    """A clicked URL as stored: carecast's own `/u/<token>` link and secret-looking parameters masked.

    A preference-center token is a credential for the contact's choices: kept in a
    delivery's history it would open them to anyone who can read the store.
    """
    parts = urlsplit(url)
    path = re.sub(r"/u/[^/]+", "/u/[token]", parts.path)
    query = [(k, "[token]" if SECRET_PARAMETER.search(k) else v) for k, v in parse_qsl(parts.query, True)]
    return urlunsplit((parts.scheme, parts.netloc, path, urlencode(query, safe="[]"), ""))


def _sendgrid_suppression(kind: str, event: Mapping[str, Any]) -> str | None:
    if kind == "bounce" and event.get("type") == "blocked":
        return None  # a block is the receiving server's mood today, not a dead address
    return SENDGRID_EVENTS[kind][1]


def _apply_to_address(session: Session, kind: str, event: Mapping[str, Any]) -> bool:
    """An event about an address but no delivery of carecast's: whether it changed anything.

    A message another system sent from the same SendGrid account, or an account-level
    unsubscribe: a hard bounce or a spam report still suppresses the address, and a
    complaint or an unsubscribe still reaches every contact with that address. A group
    unsubscribe names no campaign, so no topic: it is only counted.
    """
    try:
        address = normalised_address("email", str(event.get("email") or ""))
    except ValueError:
        return False
    suppression = _sendgrid_suppression(kind, event)
    if suppression:
        add_suppression(session, "email", address, suppression, f"sendgrid:{kind}")
    contacts = list(session.scalars(select(Contact.id).where(Contact.email == address)))
    if kind in ("spamreport", "unsubscribe"):
        for contact_id in contacts:
            _sendgrid_preferences(session, contact_id, kind, None)
    return bool(suppression) or (kind in ("spamreport", "unsubscribe") and bool(contacts))


def _sendgrid_preferences(session: Session, contact_id: str, kind: str, topic: str | None) -> None:
    wording = f"SendGrid {kind} event"
    if kind == "spamreport":
        _change_preferences(session, contact_id, "sendgrid", wording, consent=ConsentInput(email=False))
    elif kind == "unsubscribe":
        _change_preferences(session, contact_id, "sendgrid", wording, marketing=False)
    elif kind in ("group_unsubscribe", "group_resubscribe") and topic:
        _change_preferences(session, contact_id, "sendgrid", wording, topics={topic: kind == "group_resubscribe"})


def apply_twilio_status(session: Session, delivery_id: int | None, params: Mapping[str, str]) -> str:
    """Applies one verified status callback; returns what happened, for the log."""
    sid = params.get("MessageSid") or params.get("CallSid") or ""
    reported = params.get("MessageStatus") or params.get("CallStatus") or ""
    if not sid or reported not in TWILIO_STATUSES:
        return "ignored"
    if not _first_time(session, "twilio", f"{sid}:{reported}", reported, delivery_id):
        return "duplicate"
    delivery = session.get(Delivery, delivery_id) if delivery_id is not None else None
    if delivery is None:
        return "unknown_delivery"
    error_code = params.get("ErrorCode")
    _note(delivery, reported, TWILIO_STATUSES[reported], error_code=error_code)
    if reported in TWILIO_KINDS:
        add_event(session, delivery, TWILIO_KINDS[reported], utcnow(), reason=error_code[:64] if error_code else None)
    reason = TWILIO_SUPPRESSING_ERRORS.get(error_code or "")
    if reason and delivery.channel in ("sms", "voice"):
        contact = session.get(Contact, delivery.contact_id)
        if contact is not None and contact.phone:
            add_suppression(session, delivery.channel, contact.phone, reason, f"twilio:{error_code}")
    return reported


@dataclass(frozen=True)
class InboundSms:
    contact_ids: list[str]
    keyword: str | None  # STOP, START or HELP (carecast.intake.replies)
    duplicate: bool
    review: bool = False  # it speaks of stopping without plainly asking: a human should look


def apply_inbound_sms(session: Session, message_sid: str, from_number: str, body: str) -> InboundSms:
    """Records a reply once; STOP (or a plain request to stop) revokes SMS consent, START restores it, both
    with a consent record quoting the words."""
    said = meaning(body)
    word, review = (None, True) if said == "REVIEW" else (said, False)
    contact_ids = list(session.scalars(select(Contact.id).where(Contact.phone == from_number).order_by(Contact.id)))
    if not _first_time(session, "twilio", f"{message_sid}:inbound", f"inbound:{word or 'text'}", None):
        return InboundSms(contact_ids, word, duplicate=True)
    now = utcnow()
    for contact_id in contact_ids:  # a reply answers the latest text they were sent, and STOP unsubscribes from it
        if (texted := answered(session, contact_id, now, channel="sms")) is not None:
            add_event(session, texted, "replied", now)
            if word == "STOP":
                add_event(session, texted, "unsubscribed", now)
    if word in ("STOP", "START"):
        for contact_id in contact_ids:
            _change_preferences(
                session,
                contact_id,
                "sms_keyword",
                f"SMS reply: {body.strip()}",
                consent=ConsentInput(sms=word == "START"),
            )
    if word == "START":
        # The carrier-level block Twilio reported (21610) is lifted by the same word.
        session.execute(
            delete(Suppression).where(
                Suppression.channel == "sms", Suppression.address == from_number, Suppression.reason == "stop"
            )
        )
    if review:
        log.warning("an SMS reply may ask to stop messages; review it (sms_replied events with review: true)")
    return InboundSms(contact_ids, word, duplicate=False, review=review)
