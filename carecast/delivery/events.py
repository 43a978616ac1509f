"""`delivery_events`: what happened to a message after its step, as rows reports count.

Written in the transaction that learns it: a provider callback (carecast.feedback), a
recipient's unsubscribe or reply (and, in carecast.delivery.ledger, a deferral). News
that reaches carecast without naming its message — an SMS reply, an unsubscribe from the
preference center — goes to the contact's latest message it can answer (see `answered`).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import select
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


def add_event(
    session: Session, delivery: Delivery, kind: str, at: datetime, url: str | None = None, reason: str | None = None
) -> None:
    session.add(DeliveryEvent(delivery_id=delivery.id, campaign_id=delivery.campaign_id,
                              campaign_version=delivery.campaign_version, step_id=delivery.step_id,
                              channel=delivery.channel, kind=kind, reason=reason, url=url, occurred_at=at))  # fmt: skip


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
