"""Composing a claimed message: its version's templates rendered for the contact and the triggering
event, from the sender of its bundle, with one-click unsubscribe on marketing and care email."""

from __future__ import annotations

from collections.abc import Sequence
from email.utils import parseaddr

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from carecast.channels.base import OutboundMessage
from carecast.policy.decision import Send
from carecast.policy.model import EmailIdentity
from carecast.render.bundles import BundleTemplates
from carecast.render.context import template_context
from carecast.render.links import LinkSigner
from carecast.render.templates import TemplateError
from carecast.store.expressions import one_of
from carecast.store.models import Event
from workflows.journey.contract import DeliverInput

ONE_CLICK_CATEGORIES = {"marketing", "care"}


class Composer:
    def __init__(self, sessions: sessionmaker[Session], bundles: BundleTemplates, links: LinkSigner) -> None:
        self.sessions, self.bundles, self.links = sessions, bundles, links

    def events(self, requests: Sequence[DeliverInput]) -> dict[str, dict]:
        """The data of the events that triggered these messages (none for a broadcast)."""
        ids = sorted({r.trigger_event_id for r in requests if r.trigger_event_id})
        if not ids:
            return {}
        with self.sessions() as session:
            query = select(Event.event_id, Event.data).where(one_of(session, Event.event_id, ids))
            return dict(session.execute(query).all())

    def compose(
        self, request: DeliverInput, delivery_id: int, contact: dict, decision: Send, events: dict
    ) -> OutboundMessage | TemplateError:
        """The message to hand over, or the template's error (which no retry would mend)."""
        renderer, identity = self.bundles.of(request.campaign_id, request.bundle)
        context = template_context(
            contact,
            events.get(request.trigger_event_id),
            request.campaign_id,
            request.campaign_name,
            request.topic,
            self.links,
            identity.postal_address,
        )
        try:
            if decision.channel == "email":
                email = renderer.render_email(request.template, context, contact["locale"])
                subject, text, html = email.subject, email.text, email.html
            else:
                subject, html = None, None
                text = renderer.render_part(request.template, decision.channel, context, contact["locale"])
        except TemplateError as exc:
            return exc
        return OutboundMessage(
            delivery_id=delivery_id,
            channel=decision.channel,  # type: ignore[arg-type]
            to=decision.address,
            contact_id=contact["id"],
            campaign_id=request.campaign_id,
            subject=subject,
            text=text,
            html=html,
            sender=request.sender or identity.sender,
            reply_to=request.reply_to or identity.reply_to,
            category=request.category,
            locale=contact["locale"],
            headers=unsubscribe_headers(request.category, context["unsubscribe_url"], decision.channel, identity),
        )


def unsubscribe_headers(category: str, url: str, channel: str, identity: EmailIdentity) -> dict[str, str]:
    """RFC 2369 / RFC 8058 one-click unsubscribe, on every marketing and care email."""
    if channel != "email" or category not in ONE_CLICK_CATEGORIES:
        return {}
    links = [f"<{url}>"]
    if mailto := identity.unsubscribe_mailto:
        token = url.rsplit("/", 1)[-1]
        links.append(f"<mailto:{parseaddr(mailto)[1]}?subject=unsubscribe%20{token}>")
    return {"List-Unsubscribe": ", ".join(links), "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
