"""`carecast preview`: each message of a campaign as the customer would get it."""

from __future__ import annotations

from sqlalchemy import Engine

from carecast.campaign.documents import InvalidFile
from carecast.campaign.house_rules import load_house_rules
from carecast.campaign.load import load_campaign
from carecast.campaign.model import Campaign
from carecast.campaign.validate import SAMPLE_LINKS, sample_context
from carecast.config import ConfigError, Settings
from carecast.contacts.views import contact_facts
from carecast.render.context import template_context
from carecast.render.links import LinkSigner
from carecast.render.segments import count_segments
from carecast.render.templates import PARTS_BY_CHANNEL, TemplateError, TemplateRenderer
from carecast.store.db import make_sessionmaker
from carecast.store.models import Contact


class PreviewError(Exception):
    pass


def local_campaign(settings: Settings, campaign_id: str) -> Campaign:
    """The campaign file of that id in the campaigns folder (deployed or not)."""
    path = settings.campaigns_dir / f"{campaign_id}.yaml"
    if not path.exists():
        raise PreviewError(f"no campaign {campaign_id!r}: {path} does not exist")
    try:
        return load_campaign(path)
    except InvalidFile as exc:
        raise PreviewError(str(exc)) from None


def rendering_context(
    settings: Settings, campaign: Campaign, contact_id: str | None, engine: Engine | None, links: LinkSigner
) -> tuple[dict, str | None]:
    """(what the templates see, the locale) for a stored contact, or for the campaign's sample one."""
    postal_address = load_house_rules(settings.campaigns_dir).email.postal_address
    if contact_id is None:
        context = sample_context(campaign, postal_address)
        return context, context["contact"]["locale"]
    with make_sessionmaker(engine)() as session:
        contact = session.get(Contact, contact_id)
        if contact is None:
            raise PreviewError(f"no contact with id {contact_id!r}")
        facts = contact_facts(contact)
    context = template_context(
        facts, campaign.samples.event, campaign.id, campaign.name, campaign.topic, links, postal_address
    )
    return context, facts.get("locale")


def preview_campaign(
    settings: Settings, campaign_id: str, contact_id: str | None = None, step_id: str | None = None,
    engine: Engine | None = None,
) -> list[str]:  # fmt: skip
    campaign = local_campaign(settings, campaign_id)
    context, locale = rendering_context(settings, campaign, contact_id, engine, _links(settings))
    sends = [(sid, send) for sid, send in campaign.sends() if step_id in (None, sid)]
    if not sends:
        raise PreviewError(f"{campaign_id} has no send step {step_id!r}")
    renderer = TemplateRenderer(settings.templates_dir)
    who = f"contact {contact_id}" if contact_id else "the sample contact"
    blocks = [
        f"{campaign.name} ({campaign.category}) for {who}"
        + ("" if contact_id else f" ({SAMPLE_LINKS.public_url} links)")
    ]
    for sid, send in sends:
        for channel in send.channel_list():
            if not all(renderer.find(send.template, part, locale) for part in PARTS_BY_CHANNEL[channel]):
                continue
            try:
                if channel == "email":
                    email = renderer.render_email(send.template, context, locale)
                    body = f"Subject: {email.subject}\n\n{email.text}"
                else:
                    body = renderer.render_part(send.template, channel, context, locale)
                    if channel == "sms":
                        count = count_segments(body)
                        body += f"\n[{count.segments} segment(s), {count.units} {count.encoding} characters]"
            except TemplateError as exc:
                raise PreviewError(str(exc)) from None
            blocks.append(f"── step {sid} · {channel} ──\n{body}")
    return blocks


def _links(settings: Settings) -> LinkSigner:
    """The real links where this process holds the shared secret; else samples, which open nothing."""
    try:
        return settings.link_signer()
    except ConfigError:
        return SAMPLE_LINKS
