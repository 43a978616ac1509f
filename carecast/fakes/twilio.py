"""A fake Twilio REST API (Messages and Calls), with signed status callbacks and inbound SMS.

Requests are checked for HTTP basic auth and validated against the official
description. Twilio's magic test numbers fail as they do with test credentials:
+15005550001 → 21211 (invalid number), +15005550002 → 21612 (cannot route),
+15005550003 → 21408 (no permission for the region), +15005550004 → 21610
(the recipient replied STOP), +15005550009 → 21614 (not a mobile number).
Accepted messages owe carecast `sent` and `delivered` callbacks; calls owe `completed`.
All callbacks are signed with X-Twilio-Signature under the account's auth token.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from email.utils import formatdate
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from carecast.fakes.openapi import TWILIO_SPEC, validate
from carecast.fakes.recording import Callback, Journal, Received
from carecast.render.segments import count_segments

TEST_NUMBER_ERRORS = {
    "+15005550001": (21211, "The 'To' number +15005550001 is not a valid phone number."),
    "+15005550002": (21612, "The 'To' phone number is not currently reachable via SMS."),
    "+15005550003": (21408, "Permission to send an SMS has not been enabled for the region indicated by the 'To'."),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (21614, "'To' number is not a valid mobile number"),
}
MESSAGE_STATUSES = ("sent", "delivered")


def _error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse(
        {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status},
        status_code=status,
    )


class FakeTwilio:
    def __init__(self, journal: Journal, account_sid: str, auth_token: str, inbound_url: str | None) -> None:
        self.journal = journal
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.inbound_url = inbound_url
        self.validator = RequestValidator(auth_token)
        self.number = "+15005550006"  # Twilio's "valid number" for test credentials

    def routes(self) -> list[Route]:
        base = "/2010-04-01/Accounts/{account_sid}"
        return [
            Route(f"{base}/Messages.json", self.create_message, methods=["POST"]),
            Route(f"{base}/Calls.json", self.create_call, methods=["POST"]),
        ]

    async def _receive(self, request: Request) -> tuple[Received, Response | None]:
        raw = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        errors = validate(TWILIO_SPEC, "POST", request.url.path, headers, raw)
        form = dict(parse_qsl(raw.decode()))
        received = self.journal.record(Received("twilio", request.url.path, headers, form, errors))
        refusal = await self._refusal(request, headers, errors, form)
        received.status = refusal.status_code if refusal else 201
        return received, refusal

    async def _refusal(self, request, headers, errors, form) -> Response | None:
        expected = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if headers.get("authorization") != expected or request.path_params["account_sid"] != self.account_sid:
            return _error(401, 20003, "Authenticate")
        if errors:
            return _error(400, 21601 if "Body" in errors[0] else 20001, "; ".join(errors))
        if form.get("To") in TEST_NUMBER_ERRORS:
            code, message = TEST_NUMBER_ERRORS[form["To"]]
            return _error(400, code, message)
        failure = self.journal.next_failure("twilio")
        if failure is not None:
            await asyncio.sleep(failure.delay)
        if failure is not None and failure.status >= 400:
            response = _error(failure.status, failure.code or 20429, "Too Many Requests")
            if failure.retry_after is not None:
                response.headers["Retry-After"] = str(int(failure.retry_after))
            return response
        return None

    async def create_message(self, request: Request) -> Response:
        received, refusal = await self._receive(request)
        if refusal is not None:
            return refusal
        form = received.body
        sid = "SM" + secrets.token_hex(16)
        segments = count_segments(form.get("Body", "")).segments
        sender = form.get("From") or self.number
        for status in MESSAGE_STATUSES:
            self._owe_status(form.get("StatusCallback"), {"MessageSid": sid, "MessageStatus": status,
                             "SmsSid": sid, "SmsStatus": status, "To": form["To"], "From": sender})  # fmt: skip
        return self._created("Messages", sid, form, messaging_service_sid=form.get("MessagingServiceSid"),
                             body=form.get("Body"), num_segments=str(segments))  # fmt: skip

    async def create_call(self, request: Request) -> Response:
        received, refusal = await self._receive(request)
        if refusal is not None:
            return refusal
        form = received.body
        sid = "CA" + secrets.token_hex(16)
        self._owe_status(form.get("StatusCallback"), {"CallSid": sid, "CallStatus": "completed", "CallDuration": "14",
                         "To": form["To"], "From": form["From"]})  # fmt: skip
        return self._created("Calls", sid, form)

    def _created(self, resource: str, sid: str, form: dict[str, str], **fields: str | None) -> JSONResponse:
        """The 201 Twilio answers with: the new resource, queued."""
        return JSONResponse(
            {
                "sid": sid,
                "account_sid": self.account_sid,
                "to": form["To"],
                "from": form.get("From"),
                "status": "queued",
                "direction": "outbound-api",
                "api_version": "2010-04-01",
                "date_created": formatdate(usegmt=True),
                "uri": f"/2010-04-01/Accounts/{self.account_sid}/{resource}/{sid}.json",
                **fields,
            },  # fmt: skip
            status_code=201,
        )

    def signed(self, url: str, params: dict[str, str]) -> Callback:
        params = {"AccountSid": self.account_sid, "ApiVersion": "2010-04-01", **params}
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": self.validator.compute_signature(url, params),
        }
        return Callback(url, headers, urlencode(params).encode(), form=params)

    def _owe_status(self, url: str | None, params: dict[str, str]) -> None:
        if url:
            self.journal.owe(self.signed(url, params))

    def inbound_sms(self, from_number: str, body: str, to_number: str | None = None) -> Callback:
        """Owes carecast an incoming SMS, as Twilio posts it to the number's messaging webhook."""
        if not self.inbound_url:
            raise ValueError("the fake Twilio has no inbound URL to post replies to")
        sid = "SM" + secrets.token_hex(16)
        params = {"MessageSid": sid, "SmsSid": sid, "From": from_number, "To": to_number or self.number,
                  "Body": body, "NumMedia": "0"}  # fmt: skip
        callback = self.signed(self.inbound_url, params)
        self.journal.owe(callback)
        return callback
