"""`delivery_events`: what happened to a message after its step, as rows reports count.

Written in the transaction that learns it: a provider callback (carecast.feedback), a
recipient's unsubscribe or reply (and, in carecast.delivery.ledger, a deferral). News
that reaches carecast without naming its message — an SMS reply, an unsubscribe from the
preference center — goes to the contact's latest message it can answer (see `answered`).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from carecast.delivery.ledger import HANDED_OVER
from carecast.store.models import Delivery, DeliveryEvent

# SendGrid's event → the kind of row (an open is `machine_opened` when SendGrid says a machine made it)
SENDGRID_KINDS = {
    "delivered": "delivered", "bounce": "bounced", "dropped": "dropped", "open": "opened", "click": "clicked",
    "unsubscribe": "unsubscribed", "group_unsubscribe": "unsubscribed", "spamreport": "complained",
}  # fmt: skip
# Twilio's MessageStatus / CallStatus → the kind of row
TWILIO_KINDS = {
    "delivered": "delivered", "read": "delivered", "completed": "delivered", "undelivered": "undelivered",
    "failed": "undelivered", "canceled": "undelivered", "busy": "not_answered", "no-answer": "not_answered",
}  # fmt: skip
# How long after a message a reply or an unsubscribe that names no message is taken as its answer.
ANSWER_WINDOW = timedelta(days=30)


class News:
    """Rows of news about messages, written together as one INSERT (a webhook batch's, say).

    Each is marked `first` unless its message had news of that kind before (for a deferral: of
    that kind and reason), in the store or earlier in the batch. `write` flushes the session
    first: a provider's callback updates its delivery, whose row lock is then taken before the
    question is asked, so two callbacks of one message at once cannot both be first. A reply or
    an unsubscribe that names no message updates none; two of one message in the same instant
    could both count, which a person replying twice at once makes rare.
    """

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(
        self, delivery: Delivery, kind: str, at: datetime, url: str | None = None, reason: str | None = None
    ) -> None:
        self.rows.append(dict(delivery_id=delivery.id, campaign_id=delivery.campaign_id,
                              campaign_version=delivery.campaign_version, step_id=delivery.step_id,
                              channel=delivery.channel, kind=kind, reason=reason, url=url, occurred_at=at))  # fmt: skip

    def write(self, session: Session) -> None:
        if not self.rows:
            return
        session.flush()
        e = DeliveryEvent
        ids = sorted({row["delivery_id"] for row in self.rows})
        known = session.execute(select(e.delivery_id, e.kind, e.reason).where(e.first, e.delivery_id.in_(ids)))
        seen = {_key(*row) for row in known}
        for row in self.rows:
            key = _key(row["delivery_id"], row["kind"], row["reason"])
            row["first"] = key not in seen
            seen.add(key)
        session.execute(insert(DeliveryEvent.__table__), self.rows)
        self.rows = []


def _key(delivery_id: int, kind: str, reason: str | None) -> tuple:
    """What makes news a message's first of its kind: deferrals count by reason, the rest once a message."""
    return (delivery_id, kind, reason if kind == "deferred" else None)


def add_event(
    session: Session, delivery: Delivery, kind: str, at: datetime, url: str | None = None, reason: str | None = None
) -> None:
    """One row of news about `delivery`, written now."""
    news = News()
    news.add(delivery, kind, at, url, reason)
    news.write(session)


def answered(
    session: Session,
    contact_id: str,
    at: datetime,
    channel: str | None = None,
    campaigns: Collection[str] | None = None,
) -> Delivery | None:
    """The contact's latest message handed over in the ANSWER_WINDOW before `at`, on `channel` and of
    `campaigns` when given: the one a reply or an unsubscribe that names no message answers."""
    d = Delivery
    query = (
        select(d)
        .where(
            d.contact_id == contact_id, d.status.in_(HANDED_OVER), d.sent_at > at - ANSWER_WINDOW, d.sent_at <= at
        )  # fmt: skip
        .order_by(d.sent_at.desc(), d.id.desc())
        .limit(1)
    )
    if channel is not None:
        query = query.where(d.channel == channel)
    if campaigns is not None:
        query = query.where(d.campaign_id.in_(sorted(campaigns)))
    return session.scalars(query).first()
