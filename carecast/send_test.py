"""`carecast send-test CAMPAIGN --to ADDRESS_OR_PHONE`: one message of a campaign, as a contact would get it,
through the configured provider, to the address given and marked as a test.

It is rendered from the campaign file for a stored contact (`--contact`) or the campaign's
sample one, and sent outside the ledger: no delivery row, so it uses up no cap, appears in no
report, and the contact is never written to. The subject starts with [TEST] (an SMS with
"TEST: "), and its links are samples that open nothing: a marketer who clicks "unsubscribe"
in a test must not unsubscribe the real contact.
"""

from __future__ import annotations

from pydantic import ValidationError
from sqlalchemy import Engine

from carecast.campaign.house_rules import load_house_rules
from carecast.campaign.validate import SAMPLE_LINKS
from carecast.channels.base import OutboundMessage, ProviderReceipt
from carecast.config import Settings
from carecast.contacts.schema import ContactFields, first_error
from carecast.delivery.compose import unsubscribe_headers
from carecast.preview import PreviewError, local_campaign, rendering_context
from carecast.providers import build_provider
from carecast.render.templates import PARTS_BY_CHANNEL, TemplateError, TemplateRenderer

TEST_DELIVERY_ID = 0  # no row: what providers send back about it finds nothing to change
SUBJECT_MARK, TEXT_MARK = "[TEST] ", "TEST: "


def compose_test_message(
    settings: Settings, campaign_id: str, to: str, contact_id: str | None, step_id: str | None, engine: Engine | None
) -> OutboundMessage:
    """The message a send-test sends; PreviewError says why there is none."""
    channel, address = _recipient(to)
    campaign = local_campaign(settings, campaign_id)
    sends = [(sid, send) for sid, send in campaign.sends() if step_id in (None, sid) and channel in send.channel_list()]
    if not sends:
        where = f"step {step_id!r}" if step_id else "any step"
        raise PreviewError(f"{campaign_id} sends no {channel} at {where}; --to takes an email address or a +phone")
    _, send = sends[0]
    context, locale = rendering_context(settings, campaign, contact_id, engine, SAMPLE_LINKS)
    renderer = TemplateRenderer(settings.templates_dir)
    if not all(renderer.find(send.template, part, locale) for part in PARTS_BY_CHANNEL[channel]):
        raise PreviewError(f"template {send.template!r} has no {channel} part")
    identity = load_house_rules(settings.campaigns_dir).email
    try:
        if channel == "email":
            email = renderer.render_email(send.template, context, locale)
            subject, text, html = SUBJECT_MARK + email.subject, email.text, email.html
        else:
            subject, html = None, None
            text = TEXT_MARK + renderer.render_part(send.template, channel, context, locale)
    except TemplateError as exc:
        raise PreviewError(str(exc)) from None
    return OutboundMessage(
        delivery_id=TEST_DELIVERY_ID, channel=channel, to=address, contact_id=contact_id or "sample",  # type: ignore[arg-type]
        campaign_id=campaign.id, text=text, subject=subject, html=html,
        sender=campaign.sender.from_ if campaign.sender else identity.sender,
        reply_to=campaign.sender.reply_to if campaign.sender else identity.reply_to,
        category=campaign.category, locale=locale,
        headers=unsubscribe_headers(campaign.category, context["unsubscribe_url"], channel, identity),
    )  # fmt: skip


def send_test(settings: Settings, message: OutboundMessage) -> ProviderReceipt:
    return build_provider(settings).send(message)


def _recipient(to: str) -> tuple[str, str]:
    """(channel, the address in its stored form): an email address, or a phone number in +E.164."""
    field = "email" if "@" in to else "phone"
    try:
        address = getattr(ContactFields.model_validate({field: to}), field)
    except ValidationError as exc:
        raise PreviewError(f"--to: {first_error(exc)}") from None
    return ("email" if field == "email" else "sms"), address
