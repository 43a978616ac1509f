"""The `deliver` activity: reserve, decide, render, send, record — once per key.

The delivery row is written under its idempotency key before the provider is
called and completed after it, so a retried activity or a replayed workflow
returns what was recorded instead of sending again.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from carecast.channels.base import OutboundMessage, Provider, ProviderError
from carecast.policy.channels import Reachability, choose_channel
from carecast.policy.decision import Send
from carecast.render.templates import TemplateError, TemplateRenderer
from carecast.store.models import Contact, Delivery, Event, Preferences, Suppression, utcnow
from workflows.contracts import DELIVER, DeliverInput, DeliverResult

log = logging.getLogger(__name__)

FINAL_STATUSES = {"sent", "skipped", "failed"}


def _history_entry(status: str, **details: Any) -> dict[str, Any]:
    return {"status": status, "at": utcnow().isoformat(), **{k: v for k, v in details.items() if v is not None}}


def reachability(contact: Contact, preferences: Preferences | None) -> Reachability:
    """Addresses and consent of a contact; without a preferences row only email is consented."""
    prefs = preferences or Preferences(email_consent=True, sms_consent=False, voice_consent=False)
    return Reachability(
        addresses={"email": contact.email, "sms": contact.phone, "voice": contact.phone},
        consent={"email": prefs.email_consent, "sms": prefs.sms_consent, "voice": prefs.voice_consent},
        preferred=list(prefs.preferred_channels or []),
    )


def template_context(contact: Contact, event: Event | None, campaign_id: str) -> dict[str, Any]:
    return {
        "contact": {
            "id": contact.id,
            "email": contact.email,
            "phone": contact.phone,
            "timezone": contact.timezone,
            "locale": contact.locale,
            "lifecycle_stage": contact.lifecycle_stage,
            "care_agent": contact.care_agent,
            "attributes": contact.attributes or {},
        },
        "event": {"id": event.event_id, "name": event.name, "data": event.data or {}} if event else {},
        "campaign": {"id": campaign_id},
    }


class DeliveryActivities:
    def __init__(self, sessions: sessionmaker[Session], renderer: TemplateRenderer, provider: Provider) -> None:
        self.sessions = sessions
        self.renderer = renderer
        self.provider = provider

    @activity.defn(name=DELIVER)
    def deliver(self, request: DeliverInput) -> DeliverResult:
        delivery = self._reserve(request)
        if delivery.status in FINAL_STATUSES:
            return self._result(delivery)
        with self.sessions.begin() as session:
            delivery = session.get(Delivery, delivery.id)
            contact = session.get(Contact, request.contact_id)
            if contact is None:
                return self._finish(delivery, "skipped", reason="unknown_contact")
            decision = choose_channel(
                request.channels,
                reachability(contact, session.get(Preferences, contact.id)),
                self._suppressed(session, contact),
            )
            if not isinstance(decision, Send):
                return self._finish(delivery, "skipped", reason=decision.reason)
            event = self._trigger_event(session, request.trigger_event_id)
            try:
                message = self._render(request, delivery.id, decision, contact, event)
            except TemplateError as exc:
                self._finish(delivery, "failed", channel=decision.channel, reason="template_error")
                failure = str(exc)
            else:
                delivery.channel = decision.channel
                failure = None
        if failure is not None:
            # A broken template will not mend itself on retry; the operator must see it.
            raise ApplicationError(failure, non_retryable=True, type="TemplateError")

        try:
            receipt = self.provider.send(message)
        except ProviderError as exc:
            self._record_attempt_failure(delivery.id, str(exc))
            raise ApplicationError(str(exc), non_retryable=not exc.retryable, type="ProviderError") from None

        with self.sessions.begin() as session:
            delivery = session.get(Delivery, delivery.id)
            delivery.provider = receipt.provider
            delivery.provider_message_id = receipt.message_id
            return self._finish(delivery, "sent", channel=decision.channel)

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
                    status_history=[_history_entry("reserved")],
                )
                session.add(delivery)
            return delivery
        except IntegrityError:
            # Another attempt reserved the same key between our read and our insert.
            with self.sessions.begin() as session:
                return session.scalars(select(Delivery).where(Delivery.idempotency_key == key)).one()

    @staticmethod
    def _suppressed(session: Session, contact: Contact) -> set[tuple[str, str]]:
        addresses = [a for a in (contact.email, contact.phone) if a]
        if not addresses:
            return set()
        rows = session.execute(
            select(Suppression.channel, Suppression.address).where(Suppression.address.in_(addresses))
        )
        return {(channel, address) for channel, address in rows}

    @staticmethod
    def _trigger_event(session: Session, event_id: str | None) -> Event | None:
        if event_id is None:
            return None
        return session.scalar(select(Event).where(Event.event_id == event_id))

    def _render(
        self, request: DeliverInput, delivery_id: int, decision: Send, contact: Contact, event: Event | None
    ) -> OutboundMessage:
        context = template_context(contact, event, request.campaign_id)
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

    def _record_attempt_failure(self, delivery_id: int, error: str) -> None:
        with self.sessions.begin() as session:
            delivery = session.get(Delivery, delivery_id)
            delivery.status_history = [*delivery.status_history, _history_entry("attempt_failed", error=error)]

    @staticmethod
    def _finish(
        delivery: Delivery, status: str, channel: str | None = None, reason: str | None = None
    ) -> DeliverResult:
        delivery.status = status
        delivery.reason = reason
        delivery.status_history = [*delivery.status_history, _history_entry(status, channel=channel, reason=reason)]
        return DeliveryActivities._result(delivery)

    @staticmethod
    def _result(delivery: Delivery) -> DeliverResult:
        return DeliverResult(
            delivery_id=delivery.id, status=delivery.status, channel=delivery.channel, reason=delivery.reason
        )
