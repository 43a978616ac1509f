"""`GET|POST /u/{token}`: the preference center and one-click unsubscribe (RFC 8058).

The sealed token is the only key (no login, no cookie): it names the contact
and, in an unsubscribe link, the topic. Any genuine link unsubscribes, forever;
only a fresh one (90 days, not revoked) may turn something on, and an older one
offers to send a fresh link (carecast/intake/link_requests.py). The page is plain
server-rendered HTML that works without JavaScript, in the contact's language.
Every change goes through the contact writer, so it is logged as consent with
source `preference_center` (or `one_click` for RFC 8058 posts) and the words shown.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException

from carecast.api.guard import BodyTooLarge
from carecast.api.pages.strings import strings_for
from carecast.campaign.patterns import CLOCK
from carecast.channels.base import CHANNELS
from carecast.contacts.grants import grants
from carecast.contacts.schema import ConsentInput, ContactInput, PreferencesInput, QuietHoursInput
from carecast.contacts.views import contact_view, preference_view
from carecast.contacts.writer import unsubscribe_wording, write_contacts
from carecast.delivery.events import add_event, answered
from carecast.policy.model import HouseRules, QuietHours, rules_source
from carecast.policy.timezones import contact_zone
from carecast.render.links import Link, LinkSigner
from carecast.store.campaigns import active_versions
from carecast.store.models import Contact, Preferences, utcnow

PAGES = Path(__file__).parent / "pages"
PAUSE_CHOICES = (1, 2, 4, 8)
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# One field a topic, and topics can be many; Starlette's own default.
MAX_FORM_FIELDS = 1000
# What a browser always sends with the form: its action, a radio group with one checked, two time inputs, a select.
FORM_SENDS_ALWAYS = ("action", "preferred", "quiet_start", "quiet_end", "pause_weeks")
Form = dict[str, list[str]]


@dataclass(frozen=True)
class Topic:
    name: str
    label: str
    about: str = ""


def topic_label(name: str) -> str:
    return name.replace("_", " ").replace("-", " ").capitalize()


# What asking for a fresh link did: "sent", "already" (asked today) or "unavailable" (nothing sends one).
LinkRequester = Callable[[str], Awaitable[str]]


class PreferenceCenter:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        links: LinkSigner,
        house_rules: HouseRules | Callable[[], HouseRules],
        request_link: LinkRequester,
    ) -> None:
        self.sessions = sessions
        self.links = links
        self.rules = rules_source(house_rules)
        self.request_link = request_link
        self.pages = Environment(loader=FileSystemLoader(PAGES), autoescape=select_autoescape(["j2"]))

    @property
    def brand(self) -> str:
        """The name emails come from, as the house rules say now."""
        return parseaddr(self.rules().email.sender)[0] or "us"

    def page(self, name: str, locale: str | None, status: int = 200, **values: Any) -> HTMLResponse:
        lang, strings = strings_for(locale)
        html = self.pages.get_template(name).render(lang=lang, t=strings, brand=self.brand, **values)
        return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})

    def not_found(self) -> HTMLResponse:
        return self.page("not_found.html.j2", None, status=404)

    def topics(self, session: Session, prefs: Preferences | None) -> list[Topic]:
        """Topics of the deployed campaigns (with their names), then any the contact chose before."""
        about: dict[str, list[str]] = {}
        for campaign in (d.campaign for d in active_versions(session)):
            if campaign.topic and campaign.category != "transactional":
                about.setdefault(campaign.topic, []).append(campaign.name)
        for name in (prefs.topics if prefs else None) or {}:
            about.setdefault(name, [])
        return [Topic(name, topic_label(name), ", ".join(sorted(names))) for name, names in sorted(about.items())]

    def render(
        self, session: Session, contact: Contact, token: str, link: Link, rules: HouseRules, **extra: Any
    ) -> HTMLResponse:
        topic = link.topic
        prefs = session.get(Preferences, contact.id)
        view = preference_view(prefs)
        _, strings = strings_for(contact.locale)
        addresses = {"email": contact.email, "sms": contact.phone, "voice": contact.phone}
        channels = [
            {
                "name": c,
                "address": masked(addresses[c]),
                "on": view.consent.get(c, False),
                "short": strings[f"{c}_short"],
            }
            for c in CHANNELS
            if addresses[c]
        ]
        quiet = view.quiet_hours
        house_quiet = widest(rules.quiet_hours_for(contact_view(contact).region))
        zone = contact_zone(contact.timezone, contact.phone, rules.default_timezone)
        paused = view.paused_until if view.paused_until and view.paused_until > utcnow() else None
        values = dict(
            action=f"/u/{token}",
            topic=Topic(topic, topic_label(topic)) if topic else None,
            channels=channels,
            preferred=view.preferred_channels[0] if view.preferred_channels else "",
            topics=[dict(t.__dict__, on=view.topics.get(t.name, True)) for t in self.topics(session, prefs)],
            quiet_start=f"{quiet.start:%H:%M}" if quiet else "",
            quiet_end=f"{quiet.end:%H:%M}" if quiet else "",
            house_quiet=(f"{house_quiet.start:%H:%M}", f"{house_quiet.end:%H:%M}") if house_quiet else ("", ""),
            zone=zone.key,
            paused_until=f"{paused.astimezone(zone):%Y-%m-%d}" if paused else None,
            pause_choices=PAUSE_CHOICES,
            marketing=view.marketing,
            may_grant=link.may_grant(contact.links_version, contact.created_at, utcnow()),
            may_ask=link.version == contact.links_version,  # for a fresh link: a revoked one may not
            errors={},
            saved=False,
        )
        values.update(extra)
        return self.page("preferences.html.j2", contact.locale, **values)

    def changes(self, session: Session, contact: Contact, form: Form) -> PreferencesInput | str:
        """The preferences the form asks for, or the key of the quiet-hours mistake to show."""
        first = {k: v[0].strip() for k, v in form.items() if v}
        chosen_channels = set(form.get("consent", []))
        addresses = {"email": contact.email, "sms": contact.phone, "voice": contact.phone}
        consent = {c: c in chosen_channels for c in CHANNELS if addresses[c]}
        preferred = first.get("preferred", "")
        topics_on = set(form.get("topic", []))
        topics = {t.name: t.name in topics_on for t in self.topics(session, session.get(Preferences, contact.id))}
        start, end = first.get("quiet_start", ""), first.get("quiet_end", "")
        if bool(start) != bool(end):
            return "quiet_error"
        if start and not (re.fullmatch(CLOCK, start[:5]) and re.fullmatch(CLOCK, end[:5])):
            return "quiet_invalid"  # a browser without a time picker lets anything through
        given: dict[str, Any] = dict(
            consent=ConsentInput(**consent),
            topics=topics,
            preferred_channels=[preferred] if preferred in consent else [],
            quiet_hours=QuietHoursInput(start=start[:5], end=end[:5]) if start else None,
            marketing=first.get("no_marketing") != "1",
        )
        pause = first.get("pause_weeks", "")
        if pause == "0":
            given["paused_until"] = None
        elif pause in {str(n) for n in PAUSE_CHOICES}:
            given["paused_until"] = utcnow() + timedelta(weeks=int(pause))
        return PreferencesInput(**given)


@dataclass(frozen=True)
class Posted:
    """What a POST to `/u/{token}` carried: its fields, and whether it came the way a browser sends a form."""

    fields: Form
    as_form: bool

    @property
    def one_click(self) -> bool:
        """RFC 8058: a field `List-Unsubscribe=One-Click`, whatever else the body holds (any case)."""
        return any(
            name.lower() == "list-unsubscribe" and value.strip().lower() == "one-click"
            for name, values in self.fields.items()
            for value in values
        )

    @property
    def action(self) -> str:
        """The form's own `action` field; a body that is not a form has none."""
        return self.fields.get("action", [""])[0] if self.as_form else ""

    @property
    def saves(self) -> bool:
        """A save rewrites every choice, so it takes the whole form as a browser sends it, never less."""
        return self.action == "save" and all(name in self.fields for name in FORM_SENDS_ALWAYS)


async def read_post(request: Request) -> Posted:
    """The fields of a form (urlencoded or multipart); any other body is read as urlencoded for a one-click only."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    try:
        if media_type in FORM_TYPES:
            form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
            return Posted({name: form.getlist(name) for name in form}, as_form=True)
        body = (await request.body()).decode("latin-1")  # any bytes: this body can only unsubscribe
        return Posted(parse_qs(body, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS), as_form=False)
    except BodyTooLarge:
        raise  # answered 413 by the app
    except (HTTPException, ValueError):  # broken multipart, a file, too many fields
        return Posted({}, as_form=False)


def preference_center_router(center: PreferenceCenter) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def contact_of(session: Session, link: Link | None) -> Contact | None:
        return session.get(Contact, link.contact_id) if link is not None else None

    @router.get("/u/")
    async def no_token() -> Response:
        """A link cut short by a mail client."""
        return center.not_found()

    @router.get("/u/{token}")
    def show(token: str, saved: int = 0) -> Response:
        """A plain `def`: FastAPI runs it in a thread, so the store never blocks the event loop."""
        rules = center.rules()  # the house rules now, once for the request
        with center.sessions() as session:
            link = center.links.read(token)
            contact = contact_of(session, link)
            if contact is None:
                return center.not_found()
            return center.render(session, contact, token, link, rules, saved=bool(saved))

    @router.post("/u/{token}")
    async def change(token: str, request: Request) -> Response:
        link = center.links.read(token)
        if link is None:  # a forged link costs no parsing
            return center.not_found()
        posted = await read_post(request)
        if posted.action == "send_link" and not posted.one_click:
            return await send_link(link)
        return await asyncio.to_thread(apply, token, link, posted)

    async def send_link(link: Link) -> Response:
        """A fresh link, by the contact's own channels, at most once a day; asked from an old link of the
        contact's current version only, so a revoked (forwarded) link cannot have messages sent."""
        contact = await asyncio.to_thread(find_contact, link)
        if contact is None:
            return center.not_found()
        if link.version != contact.links_version:
            return center.page("link_requested.html.j2", contact.locale, status=403, outcome="revoked")
        outcome = await center.request_link(contact.id)
        return center.page("link_requested.html.j2", contact.locale, outcome=outcome)

    def find_contact(link: Link) -> Contact | None:
        with center.sessions() as session:
            return contact_of(session, link)

    def apply(token: str, link: Link, posted: Posted) -> Response:
        rules = center.rules()
        with center.sessions.begin() as session:
            contact = contact_of(session, link)
            if contact is None:
                return center.not_found()
            topic = link.topic
            one_click = posted.one_click
            if one_click or posted.action == "unsubscribe_topic":
                given = PreferencesInput(topics={topic: False}) if topic else PreferencesInput(marketing=False)
                source = "one_click" if one_click else "preference_center"
                wording = unsubscribe_wording(topic)
                write_contacts(
                    session,
                    [ContactInput(id=contact.id, preferences=given)],
                    source=source,
                    wording=wording,
                    address_key=None,
                )
                left = {d.campaign.id for d in active_versions(session)  # the topic's campaigns, or all marketing
                        if (d.campaign.topic == topic if topic else d.campaign.category == "marketing")}  # fmt: skip
                if (message := answered(session, contact.id, utcnow(), campaigns=left)) is not None:
                    add_event(session, message, "unsubscribed", utcnow())  # for the report of what they left
                return center.page(
                    "unsubscribed.html.j2",
                    contact.locale,
                    topic=Topic(topic, topic_label(topic)) if topic else None,
                    # the whole page, by a link as old as this one: an unsubscribe never freshens a link
                    manage_url=f"/u/{center.links.token(contact.id, version=link.version, issued_at=link.issued_at)}",
                )
            if not posted.saves:
                return center.page("bad_request.html.j2", contact.locale, status=400, manage_url=f"/u/{token}")
            given = center.changes(session, contact, posted.fields)
            _, strings = strings_for(contact.locale)
            if isinstance(given, str):
                errors = {"quiet": strings[given]}
                return center.render(session, contact, token, link, rules, errors=errors, status=422)
            now = utcnow()
            if not link.may_grant(contact.links_version, contact.created_at, now) and grants(
                preference_view(session.get(Preferences, contact.id)), given, now
            ):
                # nothing is saved: a stale link may turn things off, so the contact can untick what they turned on
                errors = {"grant": strings["stale_grant"]}
                return center.render(session, contact, token, link, rules, errors=errors, status=403)
            write_contacts(
                session,
                [ContactInput(id=contact.id, preferences=given)],
                source="preference_center",
                wording=strings["title"].format(brand=center.brand),
                address_key=None,  # the contact exists: nothing is created
            )
        return RedirectResponse(f"/u/{token}?saved=1", status_code=303)

    return router


def masked(address: str) -> str:
    """Enough of an address to recognise it, not to learn it from a forwarded link: a•••@example.com, •••0101."""
    if "@" in address:
        local, _, domain = address.partition("@")
        return f"{local[:1]}•••@{domain}"
    return f"•••{address[-4:]}"


def widest(quiet: tuple[QuietHours, ...]) -> QuietHours | None:
    """The quiet hours that hold all the others (a region's stricter ones), to show as "our usual"."""
    return next((q for q in reversed(quiet) if all(q.covers(other) for other in quiet)), quiet[0] if quiet else None)
