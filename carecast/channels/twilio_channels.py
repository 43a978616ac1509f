"""SMS and voice calls through Twilio's REST API (2010-04-01), with the official SDK.

Both pass a StatusCallback URL carrying the delivery id, so Twilio's signed
status callbacks find their row. Calls read the voice template with `<Say>` in
the contact's language. Errors are mapped to what the deliver activity does
next (see `ProviderError`), by Twilio's error codes:
https://www.twilio.com/docs/api/errors
"""

from __future__ import annotations

import threading

import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from twilio.twiml.voice_response import VoiceResponse
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from carecast.channels.base import OutboundMessage, ProviderError, ProviderReceipt

UNSUBSCRIBED = {21610}  # the recipient replied STOP to this sender
INVALID_ADDRESS = {21211, 21214, 21217, 21401, 21407, 21614, 13224}
AUTH = {20003, 20005}
# Languages `<Say>` speaks, by the language of a contact's locale when it names no region.
SAY_LANGUAGE = {
    "da": "da-DK", "de": "de-DE", "en": "en-US", "es": "es-ES", "fi": "fi-FI", "fr": "fr-FR", "it": "it-IT",
    "ja": "ja-JP", "ko": "ko-KR", "nb": "nb-NO", "nl": "nl-NL", "pl": "pl-PL", "pt": "pt-BR", "ru": "ru-RU",
    "sv": "sv-SE", "zh": "zh-CN",
}  # fmt: skip


def say_language(locale: str | None) -> str:
    """`fr` → fr-FR, `en_GB` → en-GB; a language Twilio cannot speak falls back to en-US."""
    if not locale:
        return "en-US"
    language, _, region = locale.replace("_", "-").partition("-")
    if region[:2].isalpha() and len(region) >= 2 and language.lower() in SAY_LANGUAGE:
        return f"{language.lower()}-{region[:2].upper()}"
    return SAY_LANGUAGE.get(language.lower(), "en-US")


def voice_twiml(text: str, locale: str | None) -> str:
    response = VoiceResponse()
    response.say(text, language=say_language(locale))
    return str(response)


class _HeaderKeepingHttpClient(TwilioHttpClient):
    """Keeps each thread's last response headers: the SDK's errors drop Retry-After."""

    def __init__(self, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.local = threading.local()

    def request(self, *args, **kwargs):
        response = super().request(*args, **kwargs)
        self.local.headers = response.headers or {}
        return response

    def retry_after(self) -> float | None:
        value = getattr(self.local, "headers", {}).get("Retry-After")
        try:
            return max(0.0, float(value)) if value else None
        except ValueError:
            return None


def twilio_client(account_sid: str, auth_token: str, base_url: str | None, timeout: float) -> Client:
    # With a base URL of our own, TWILIO_EDGE / TWILIO_REGION must not rewrite its host.
    environment = {} if base_url else None
    http_client = _HeaderKeepingHttpClient(timeout)
    client = Client(account_sid, auth_token, http_client=http_client, environment=environment)
    if base_url:
        client.api.base_url = base_url.rstrip("/")
    return client


class _TwilioChannel:
    name = "twilio"
    idempotent = False

    def __init__(self, client: Client, public_url: str) -> None:
        self.client = client
        self.public_url = public_url.rstrip("/")

    def status_callback(self, message: OutboundMessage) -> str:
        return f"{self.public_url}/webhooks/twilio/status?delivery={message.delivery_id}"

    def _error(self, exc: TwilioRestException) -> ProviderError:
        text = f"Twilio answered {exc.status} (error {exc.code}): {exc.msg}"
        if exc.status == 429 or exc.status >= 500:
            return ProviderError(text, retry_after=self.client.http_client.retry_after())
        if exc.code in UNSUBSCRIBED:
            return ProviderError(text, kind="unsubscribed")
        if exc.code in INVALID_ADDRESS:
            return ProviderError(text, kind="invalid_address")
        if exc.status in (401, 403) or exc.code in AUTH:
            return ProviderError(f"{text}; check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN", kind="auth")
        return ProviderError(text, kind="rejected")

    def _call_api(self, create, **params):
        try:
            return create(**params)
        except TwilioRestException as exc:
            raise self._error(exc) from None
        except requests.RequestException as exc:
            if never_left(exc):
                raise ProviderError(f"Twilio could not be reached: {exc}") from None
            raise ProviderError(f"Twilio did not answer after the request was sent: {exc}", kind="uncertain") from None


def never_left(exc: requests.RequestException) -> bool:
    """Whether a failed request surely never reached Twilio (no connection was made), so sending again is safe.

    requests.ConnectionError covers both a connection never made and one dropped after the
    request went out; only the first is safe to repeat.
    """
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ReadTimeout):
        return False
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)  # a MaxRetryError names what went wrong
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError, NameResolutionError))


class TwilioSms(_TwilioChannel):
    def __init__(
        self, client: Client, public_url: str, *, messaging_service_sid: str | None, from_number: str | None
    ) -> None:
        super().__init__(client, public_url)
        if not (messaging_service_sid or from_number):
            raise ValueError("Twilio SMS needs TWILIO_MESSAGING_SERVICE_SID or TWILIO_FROM_NUMBER")
        self.sender = (
            {"messaging_service_sid": messaging_service_sid} if messaging_service_sid else {"from_": from_number}
        )

    def send(self, message: OutboundMessage) -> ProviderReceipt:
        sent = self._call_api(
            self.client.messages.create,
            to=message.to,
            body=message.text,
            status_callback=self.status_callback(message),
            **self.sender,
        )
        segments = int(sent.num_segments) if sent.num_segments not in (None, "") else None
        return ProviderReceipt(self.name, sent.sid, segments=segments)


class TwilioVoice(_TwilioChannel):
    def __init__(self, client: Client, public_url: str, *, from_number: str) -> None:
        super().__init__(client, public_url)
        self.from_number = from_number

    def send(self, message: OutboundMessage) -> ProviderReceipt:
        call = self._call_api(
            self.client.calls.create,
            to=message.to,
            from_=self.from_number,
            twiml=voice_twiml(message.text, message.locale),
            status_callback=self.status_callback(message),
        )
        return ProviderReceipt(self.name, call.sid)
