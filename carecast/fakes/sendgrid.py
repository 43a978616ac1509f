"""A fake SendGrid Mail Send v3 endpoint, and its signed event webhook.

`POST /v3/mail/send` checks the bearer key, validates the body against the
official description, and refuses a bad recipient address as SendGrid does (the
spec's `email` format only asks for an @). An accepted message answers 202 with
an X-Message-Id and owes carecast `processed` and `delivered` events, signed
with ECDSA (P-256, SHA-256) exactly as SendGrid's signed event webhook does.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
import time
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from email_validator import EmailNotValidError, validate_email
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from carecast.fakes.openapi import SENDGRID_SPEC, validate
from carecast.fakes.recording import Callback, Journal, Received

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"


class EventSigner:
    """The key pair of a signed event webhook; `public_key` is what SendGrid shows as the verification key."""

    def __init__(self) -> None:
        self._private = ec.generate_private_key(ec.SECP256R1())
        der = self._private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_key = base64.b64encode(der).decode()

    def headers(self, payload: bytes, timestamp: int | None = None) -> dict[str, str]:
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        signature = self._private.sign(stamp.encode() + payload, ec.ECDSA(hashes.SHA256()))
        return {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: base64.b64encode(signature).decode(),
            TIMESTAMP_HEADER: stamp,
        }


# A plain address: an ASCII dot-atom local part, then a domain. For these only the domain
# needs email-validator (two thirds of its time per address), and a batch has few domains.
PLAIN_ADDRESS = re.compile(r"(?P<local>[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*)@(?P<domain>[A-Za-z0-9.-]+)")


@lru_cache(maxsize=1024)
def _domain_accepted(domain: str) -> bool:
    return _accepted(f"postmaster@{domain}")


def _accepted(address: str) -> bool:
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def _recipient_accepted(address: str) -> bool:
    plain = PLAIN_ADDRESS.fullmatch(address)
    if plain and len(plain["local"]) <= 64 and len(address) <= 254:
        return _domain_accepted(plain["domain"])
    return _accepted(address)


def _bad_recipient(body: dict[str, Any]) -> str | None:
    """The field of the first recipient SendGrid would refuse (the spec's `email` format only wants an @)."""
    for n, personalization in enumerate(body["personalizations"]):
        for m, recipient in enumerate(personalization["to"]):
            if not _recipient_accepted(recipient["email"]):
                return f"personalizations.{n}.to.{m}.email"
    return None


def _error(status: int, message: str, field: str | None = None) -> JSONResponse:
    return JSONResponse({"errors": [{"message": message, "field": field, "help": None}]}, status_code=status)


def _spec_error(error: str) -> dict[str, Any]:
    """One line of `openapi.validate` as SendGrid words an error: the field in dots, None for the body."""
    where, _, message = error.partition(": ")
    if not message:
        return {"message": where, "field": None, "help": None}
    return {"message": message, "field": None if where == "(body)" else where.replace("/", "."), "help": None}


class FakeSendGrid:
    def __init__(self, journal: Journal, api_key: str, webhook_url: str | None) -> None:
        self.journal = journal
        self.api_key = api_key
        self.webhook_url = webhook_url
        self.signer = EventSigner()

    def routes(self) -> list[Route]:
        return [Route("/v3/mail/send", self.mail_send, methods=["POST"])]

    async def mail_send(self, request: Request) -> Response:
        arrived = time.monotonic()  # before the body is read and checked: when the provider got it
        raw = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        errors = validate(SENDGRID_SPEC, "POST", "/v3/mail/send", headers, raw)
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
        received = self.journal.record(Received("sendgrid", request.url.path, headers, body, errors, at=arrived))
        response = await self._answer(headers, errors, body, received)
        received.status = response.status_code
        return response

    async def _answer(self, headers: dict[str, str], errors: list[str], body: Any, received: Received) -> Response:
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(401, "The provided authorization grant is invalid, expired, or revoked")
        if errors:
            return JSONResponse({"errors": [_spec_error(error) for error in errors]}, status_code=400)
        if bad := _bad_recipient(body):
            return _error(400, "Does not contain a valid address.", bad)
        failure = self.journal.next_failure("sendgrid")
        if failure is not None:
            received.answered_after = failure.delay
            await asyncio.sleep(failure.delay)
        if failure is not None and failure.status >= 400:
            response = _error(failure.status, "too many requests" if failure.status == 429 else "told to fail")
            if failure.retry_after is not None:
                response.headers["Retry-After"] = str(int(failure.retry_after))
            return response
        message_id = secrets.token_urlsafe(16)
        self._owe_events(body, message_id)
        return Response(status_code=202, headers={"X-Message-Id": message_id})

    def _owe_events(self, body: dict[str, Any], message_id: str) -> None:
        if not self.webhook_url:
            return
        custom_args = body.get("custom_args") or {}
        events = []
        for n, personalization in enumerate(body["personalizations"]):
            for recipient in personalization["to"]:
                for event in ("processed", "delivered"):
                    events.append(
                        {
                            "email": recipient["email"],
                            "timestamp": int(time.time()),
                            "event": event,
                            "sg_event_id": secrets.token_urlsafe(16),
                            "sg_message_id": f"{message_id}.filter0001.{n}",
                            "category": body.get("categories") or [],
                            **custom_args,
                            **(personalization.get("custom_args") or {}),
                        }
                    )
        self.post_events(events)

    def post_events(self, events: list[dict[str, Any]], timestamp: int | None = None) -> Callback:
        """Owes carecast a signed batch of events (tests use it for bounces, complaints, ...)."""
        payload = json.dumps(events).encode()
        callback = Callback(self.webhook_url or "", self.signer.headers(payload, timestamp), payload)
        self.journal.owe(callback)
        return callback
