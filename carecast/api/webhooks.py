"""The way back from the providers: SendGrid's event webhook and Twilio's callbacks.

Every request is verified before anything is read from it: SendGrid's ECDSA
signature over timestamp + raw body (with the verification key from
SENDGRID_WEBHOOK_PUBLIC_KEY, and no older than five minutes), Twilio's
X-Twilio-Signature over the public URL and the form (TWILIO_AUTH_TOKEN). A bad
or missing signature is a 403 and changes nothing.
"""

from __future__ import annotations

import asyncio
import binascii
import json
import logging
import time
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import JSONResponse, Response
from sendgrid.helpers.eventwebhook import EventWebhook
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from twilio.request_validator import RequestValidator

from carecast.campaign.house_rules import local_house_spec
from carecast.config import Settings
from carecast.feedback import apply_inbound_sms, apply_sendgrid_events, apply_twilio_status
from carecast.intake.record import IncomingEvent, record_event
from carecast.intake.relay import relay_now
from carecast.metrics import WEBHOOKS
from carecast.reporting.guardrails import GuardrailWatch
from carecast.store.campaigns import active_versions
from carecast.store.models import utcnow

SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
MAX_AGE_SECONDS = 300
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
SMS_REPLIED = "sms_replied"

log = logging.getLogger("carecast.webhooks")


def _forbidden(why: str) -> HTTPException:
    log.warning("webhook refused: %s", why)
    WEBHOOKS.labels("", "forbidden").inc()
    return HTTPException(status.HTTP_403_FORBIDDEN, why)


class SendGridVerifier:
    def __init__(self, public_key: str) -> None:
        self.webhook = EventWebhook(public_key)

    def check(self, raw: bytes, signature: str | None, timestamp: str | None, now: float) -> None:
        if not signature or not timestamp:
            raise _forbidden("missing SendGrid signature headers")
        try:
            age = now - int(timestamp)
        except ValueError:
            raise _forbidden("the SendGrid timestamp is not a number") from None
        if abs(age) > MAX_AGE_SECONDS:
            raise _forbidden("the SendGrid timestamp is more than 5 minutes away from now")
        try:
            genuine = self.webhook.verify_signature(raw.decode(), signature, timestamp)
        except (binascii.Error, ValueError, UnicodeDecodeError):
            genuine = False
        if not genuine:
            raise _forbidden("the SendGrid signature does not match")


class TwilioVerifier:
    def __init__(self, auth_token: str, public_url: str) -> None:
        self.validator = RequestValidator(auth_token)
        self.public_url = public_url.rstrip("/")

    async def form(self, request: Request) -> dict[str, str]:
        """The verified form of a Twilio request, signed over the URL Twilio was given."""
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
        url = self.public_url + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        signature = request.headers.get("X-Twilio-Signature")
        if not signature or not self.validator.validate(url, form, signature):
            raise _forbidden(f"the Twilio signature does not match {url}")
        return form


def webhooks_router(
    settings: Settings, sessions: sessionmaker[Session], temporal: Callable[[], Awaitable[Client]]
) -> APIRouter:
    router = APIRouter(prefix="/webhooks")
    # The providers' news is what a guardrail is judged by: each request may set off a check (throttled).
    local = local_house_spec(settings.campaigns_dir).guardrails
    watch = GuardrailWatch(sessions, local, settings.guardrail_check_seconds, settings.alert_webhook_url)
    sendgrid = SendGridVerifier(settings.sendgrid_webhook_public_key) if settings.sendgrid_webhook_public_key else None
    twilio = TwilioVerifier(settings.twilio_auth_token, settings.public_url) if settings.twilio_auth_token else None

    def needs(verifier, setting: str):
        if verifier is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"set {setting} to receive these callbacks")
        return verifier

    @router.post("/sendgrid")
    async def sendgrid_events(request: Request) -> JSONResponse:
        raw = await request.body()
        needs(sendgrid, "SENDGRID_WEBHOOK_PUBLIC_KEY").check(
            raw, request.headers.get(SENDGRID_SIGNATURE), request.headers.get(SENDGRID_TIMESTAMP), time.time()
        )
        try:
            events = json.loads(raw)
        except (ValueError, RecursionError):  # not JSON, or nested deeper than any event is
            events = None
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "the body must be a JSON array of event objects")
        summary = await asyncio.to_thread(_apply_sendgrid, sessions, events)
        for kind, count in summary.statuses.items():
            WEBHOOKS.labels("sendgrid", kind).inc(count)
        WEBHOOKS.labels("sendgrid", "duplicate").inc(summary.duplicates)
        await asyncio.to_thread(watch.poke)
        return JSONResponse(summary.__dict__)

    @router.post("/twilio/status")
    async def twilio_status(request: Request) -> Response:
        form = await needs(twilio, "TWILIO_AUTH_TOKEN").form(request)
        raw_id = request.query_params.get("delivery", "")
        delivery_id = int(raw_id) if raw_id.isdigit() else None
        outcome = await asyncio.to_thread(_apply_twilio_status, sessions, delivery_id, form)
        log.info("twilio status for delivery %s: %s", delivery_id, outcome)
        WEBHOOKS.labels("twilio", outcome).inc()
        await asyncio.to_thread(watch.poke)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.post("/twilio/inbound")
    async def twilio_inbound(request: Request) -> Response:
        form = await needs(twilio, "TWILIO_AUTH_TOKEN").form(request)
        sid, sender, body = form.get("MessageSid", ""), form.get("From", ""), form.get("Body", "")
        if not sid or not sender:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "an inbound message needs MessageSid and From")
        signals = await asyncio.to_thread(_apply_inbound, sessions, sid, sender, body)
        await relay_now(temporal, sessions, settings.task_queue, signals)
        WEBHOOKS.labels("twilio", "inbound").inc()
        await asyncio.to_thread(watch.poke)
        # Twilio answers STOP / START / HELP itself (Advanced Opt-Out); we add no second reply.
        return Response(EMPTY_TWIML, media_type="text/xml")

    return router


def _apply_sendgrid(sessions: sessionmaker[Session], events: list[dict]):
    with sessions.begin() as session:
        topics = {d.campaign.id: d.campaign.topic for d in active_versions(session) if d.campaign.topic}
        return apply_sendgrid_events(session, events, topics)


def _apply_twilio_status(sessions: sessionmaker[Session], delivery_id: int | None, form: dict[str, str]) -> str:
    with sessions.begin() as session:
        return apply_twilio_status(session, delivery_id, form)


def _apply_inbound(sessions: sessionmaker[Session], sid: str, sender: str, body: str) -> list[int]:
    """A reply recorded, its keyword applied and its `sms_replied` events stored, in one transaction."""
    with sessions.begin() as session:
        inbound = apply_inbound_sms(session, sid, sender, body)
        if inbound.duplicate:
            return []
        signals: list[int] = []
        for contact_id in inbound.contact_ids:
            data = {"body": body, "keyword": inbound.keyword, **({"review": True} if inbound.review else {})}
            event = IncomingEvent(f"twilio-{sid}-{contact_id}", contact_id, SMS_REPLIED, utcnow(), data)
            signals += record_event(session, event).signals
        return signals
