"""The `deliver` activity: decide, reserve, render, send, record — once per idempotency key.

1. The row for the key is found or inserted (`reserved`).
2. In one transaction holding the contact's lock, the policy decides over the
   contact's preferences, suppressions and counted deliveries; a Send marks the
   row `sending` with its `sent_at`, so fifty racing journeys see each other's
   sends and a cap of 2 lets exactly 2 through.
3. The message is rendered and handed to the provider; the row becomes `sent`.

A retry that finds the row final returns what was recorded. A retry that finds
it `sending` for longer than an attempt may last (DELIVER_TIMEOUT) means a crash
between handing the message over and recording it: nobody can know whether the
provider took it, so the row is resolved by category (transactional and care:
send again; marketing: record `uncertain`). Younger `sending` rows belong to a
live attempt, and this one retries later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from carecast.channels.base import OutboundMessage, Provider, ProviderError
from carecast.contacts.views import contact_facts, contact_view, preference_view
from carecast.policy.decide import decide
from carecast.policy.decision import Defer, Send, Skip
from carecast.policy.model import HouseRules, Message, SentDelivery
from carecast.policy.timezones import contact_zone
from carecast.render.context import template_context
from carecast.render.links import LinkSigner
from carecast.render.templates import TemplateError, TemplateRenderer
from carecast.store.models import Contact, Delivery, Event, Preferences, Suppression, utcnow
from carecast.store.writes import lock_contact
from workflows.contracts import DELIVER, DELIVER_TIMEOUT, DeliverInput, DeliverResult

log = logging.getLogger(__name__)

FINAL = {"sent", "skipped", "failed", "uncertain", "holdout"}
# Rows that never reached a provider do not count toward caps.
NOT_COUNTED = ("reserved", "deferred", "skipped", "failed", "holdout")
RESEND_AFTER_UNCERTAINTY = {"transactional", "care"}


def _history(status: str, **details: Any) -> dict[str, Any]:
    return {"status": status, "at": utcnow().isoformat(), **{k: v for k, v in details.items() if v is not None}}


def _record(delivery: Delivery, status: str, **details: Any) -> None:
    delivery.status = status
    delivery.status_history = [*delivery.status_history, _history(status, **details)]


class DeliveryActivities:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        renderer: TemplateRenderer,
        provider: Provider,
        house_rules: HouseRules,
        links: LinkSigner,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.links = links
        self.clock = clock
        self.renderer = renderer
        self.provider = provider
        self.house_rules = house_rules
        windows = [cap.window for cap in house_rules.caps]
        self.count_window = max(windows, default=timedelta(days=30))

    @activity.defn(name=DELIVER)
    def deliver(self, request: DeliverInput) -> DeliverResult:
        delivery = self._reserve(request)
        if delivery.status in FINAL:
            return self._result(delivery)
        if request.holdout:
            return self._finish(delivery.id, "holdout", reason="holdout")
        if delivery.status == "sending":
            if self.clock() - delivery.sent_at < DELIVER_TIMEOUT:
                return self._claimed_elsewhere(delivery)  # a live attempt is sending it right now
            if request.category not in RESEND_AFTER_UNCERTAINTY and not self.provider.idempotent:
                return self._finish(delivery.id, "uncertain", reason="crashed_while_sending")

        outcome = self._decide_and_claim(request, delivery.id, seen_status=delivery.status)
        if not isinstance(outcome, OutboundMessage):
            return outcome

        try:
            receipt = self.provider.send(outcome)
        except ProviderError as exc:
            self._release_after_failure(delivery.id, str(exc))
            raise ApplicationError(str(exc), non_retryable=not exc.retryable, type="ProviderError") from None
        return self._finish(
            delivery.id, "sent", channel=outcome.channel, provider=receipt.provider, message_id=receipt.message_id
        )

    def _reserve(self, request: DeliverInput) -> Delivery:
        """The row for this key: found if an earlier attempt wrote it, else inserted now."""
        key = request.idempotency_key
        with self.sessions.begin() as session:
            existing = session.scalar(select(Delivery).where(Delivery.idempotency_key == key))
            if existing is not None:
                return existing
        try:
            with self.sessions.begin() as session:
                delivery = Delivery(
                    idempotency_key=key,
                    workflow_id=request.workflow_id,
                    campaign_id=request.campaign_id,
                    campaign_version=request.campaign_version,
                    category=request.category,
                    step_id=request.step_id,
                    contact_id=request.contact_id,
                    template=request.template,
                    status="reserved",
                    status_history=[_history("reserved")],
                )
                session.add(delivery)
            return delivery
        except IntegrityError:
            # Another attempt reserved the same key between our read and our insert.
            with self.sessions.begin() as session:
                return session.scalars(select(Delivery).where(Delivery.idempotency_key == key)).one()

    def _decide_and_claim(
        self, request: DeliverInput, delivery_id: int, seen_status: str
    ) -> OutboundMessage | DeliverResult:
        """Asks the policy under the contact's lock; a Send claims its place in the caps at once."""
        with self.sessions.begin() as session:
            contact = lock_contact(session, request.contact_id)
            # Read the clock and the row only once the lock is held: a racing send that
            # committed while we waited must be in the past of `now`, or caps miss it.
            now = max(self.clock(), request.asked_at or self.clock())
            delivery = session.get(Delivery, delivery_id)
            if delivery.status != seen_status:
                return self._claimed_elsewhere(delivery)
            if contact is None:
                _record(delivery, "skipped", reason="unknown_contact")
                delivery.reason = "unknown_contact"
                return self._result(delivery)
            prefs = session.get(Preferences, contact.id)
            if seen_status == "sending":  # resending after a crash, as decided before
                decision = Send(delivery.channel, self._address(contact, delivery.channel))
            else:
                decision = decide(
                    self._message(request),
                    contact_view(contact),
                    preference_view(prefs),
                    self._suppressed(session, contact),
                    self._counted(session, contact.id, now),
                    self.house_rules,
                    now,
                )
            if isinstance(decision, Skip):
                delivery.reason = decision.reason
                _record(delivery, "skipped", reason=decision.reason)
                return self._result(delivery)
            if isinstance(decision, Defer):
                delivery.reason = decision.reason
                _record(delivery, "deferred", reason=decision.reason, until=decision.until.isoformat())
                return self._deferred(delivery, decision, contact, now)
            try:
                message = self._render(request, delivery.id, decision, contact, session)
            except TemplateError as exc:
                delivery.reason = "template_error"
                _record(delivery, "failed", reason="template_error", error=str(exc))
                failure = str(exc)
            else:
                delivery.channel = decision.channel
                delivery.reason = None
                delivery.sent_at = delivery.sent_at or now
                _record(delivery, "sending", channel=decision.channel)
                return message
        # A broken template will not mend itself on retry; the operator must see it.
        raise ApplicationError(failure, non_retryable=True, type="TemplateError")

    def _claimed_elsewhere(self, delivery: Delivery) -> DeliverResult:
        """Another attempt of the same key decided first: use its outcome, or wait for it."""
        if delivery.status in FINAL:
            return self._result(delivery)
        raise ApplicationError(f"delivery {delivery.id} is being sent by another attempt", type="ConcurrentAttempt")

    def _message(self, request: DeliverInput) -> Message:
        max_hold = timedelta(seconds=request.max_hold_seconds) if request.max_hold_seconds else None
        return Message(
            category=request.category,  # type: ignore[arg-type]
            channels=tuple(request.channels),
            topic=request.topic,
            urgent=request.urgent,
            on_cap=request.on_cap,  # type: ignore[arg-type]
            held_since=request.held_since,
            max_hold=max_hold,
        )

    @staticmethod
    def _address(contact: Contact, channel: str) -> str:
        return contact.email if channel == "email" else contact.phone

    @staticmethod
    def _suppressed(session: Session, contact: Contact) -> set[tuple[str, str]]:
        addresses = [a for a in (contact.email, contact.phone) if a]
        if not addresses:
            return set()
        rows = session.execute(
            select(Suppression.channel, Suppression.address).where(Suppression.address.in_(addresses))
        )
        return {(channel, address) for channel, address in rows}

    def _counted(self, session: Session, contact_id: str, now: datetime) -> list[SentDelivery]:
        rows = session.execute(
            select(Delivery.sent_at, Delivery.category, Delivery.channel).where(
                Delivery.contact_id == contact_id,
                Delivery.sent_at > now - self.count_window,
                Delivery.status.not_in(NOT_COUNTED),
            )
        )
        return [SentDelivery(at=at, category=category, channel=channel) for at, category, channel in rows]

    def _deferred(self, delivery: Delivery, decision: Defer, contact: Contact, now: datetime) -> DeliverResult:
        tz = contact_zone(contact.timezone, contact.phone, self.house_rules.default_timezone)
        local = decision.until.astimezone(tz)
        today = now.astimezone(tz).date()
        when = f"{local:%H:%M}" if local.date() == today else f"{local:%a %d %b %H:%M}"
        return DeliverResult(
            delivery_id=delivery.id,
            status="deferred",
            reason=decision.reason,
            deferred_until=decision.until,
            deferred_until_local=f"{when} {tz.key}",
        )

    def _render(
        self, request: DeliverInput, delivery_id: int, decision: Send, contact: Contact, session: Session
    ) -> OutboundMessage:
        event = None
        if request.trigger_event_id is not None:
            event = session.scalar(select(Event).where(Event.event_id == request.trigger_event_id))
        context = template_context(
            contact_facts(contact),
            event.data if event else None,
            request.campaign_id,
            request.campaign_name,
            request.topic,
            self.links,
        )
        if decision.channel == "email":
            email = self.renderer.render_email(request.template, context, contact.locale)
            subject, text, html = email.subject, email.text, email.html
        else:
            subject, html = None, None
            text = self.renderer.render_part(request.template, decision.channel, context, contact.locale)
        return OutboundMessage(
            delivery_id=delivery_id,
            channel=decision.channel,  # type: ignore[arg-type]
            to=decision.address,
            contact_id=contact.id,
            campaign_id=request.campaign_id,
            subject=subject,
            text=text,
            html=html,
        )

    def _release_after_failure(self, delivery_id: int, error: str) -> None:
        """The provider refused: the message is known not to be out, so the row is no longer counted."""
        with self.sessions.begin() as session:
            delivery = session.get(Delivery, delivery_id)
            delivery.sent_at = None
            _record(delivery, "reserved", error=error)

    def _finish(self, delivery_id: int, status: str, **details: Any) -> DeliverResult:
        with self.sessions.begin() as session:
            delivery = session.get(Delivery, delivery_id)
            if "provider" in details:
                delivery.provider = details.pop("provider")
                delivery.provider_message_id = details.pop("message_id")
            delivery.reason = details.get("reason")
            _record(delivery, status, **details)
            return self._result(delivery)

    @staticmethod
    def _result(delivery: Delivery) -> DeliverResult:
        return DeliverResult(
            delivery_id=delivery.id, status=delivery.status, channel=delivery.channel, reason=delivery.reason
        )
