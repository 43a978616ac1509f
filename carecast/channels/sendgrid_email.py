"""Email through SendGrid's Mail Send v3 API, with the official SDK.

Every message carries the delivery id in `custom_args`, so the event webhook
finds its row, and categories for the campaign and its category, so SendGrid's
own statistics split the same way. Errors are mapped to what the deliver
activity does next (see `ProviderError`).

A broadcast page goes out in few requests (`send_many`): messages that share a
sender, reply-to and campaign travel as up to 1,000 personalizations of one
request, each with its own recipient, subject, headers, delivery id, and its
rendered text and HTML as substitutions of the shared content. SendGrid caps
substitutions at 10,000 bytes per personalization, so a larger message goes on
its own request; so does every message of a batch SendGrid refuses as a whole
with a 400, so the one bad address gets its own error and the others go.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Sequence
from email.utils import parseaddr
from typing import Any
from urllib.error import URLError

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient

from carecast.channels.base import OutboundMessage, ProviderError, ProviderReceipt

DEFAULT_HOST = "https://api.sendgrid.com"
DEFAULT_SENDER = "Care team <care@example.com>"
MAX_PERSONALIZATIONS = 1000
MAX_SUBSTITUTION_BYTES = 10_000
TEXT_TAG, HTML_TAG = "%carecast:text%", "%carecast:html%"


def build_mail(message: OutboundMessage) -> dict[str, Any]:
    """The request body of one message, in SendGrid's request format."""
    return build_batch([message]) | {
        "subject": message.subject or "",
        "content": [{"type": "text/plain", "value": message.text}]
        + ([{"type": "text/html", "value": message.html}] if message.html is not None else []),
        "personalizations": [{"to": [{"email": message.to}]}],
        "custom_args": {"delivery_id": str(message.delivery_id), "campaign_id": message.campaign_id},
        **({"headers": dict(message.headers)} if message.headers else {}),
    }


def _batch_key(message: OutboundMessage) -> tuple | None:
    """Messages with the same key can share one request; None: this one goes alone."""
    size = len(message.text.encode()) + len((message.html or "").encode()) + len(TEXT_TAG) + len(HTML_TAG)
    if size > MAX_SUBSTITUTION_BYTES:
        return None
    return (message.sender, message.reply_to, message.campaign_id, message.category, message.html is not None)


def _address(mailbox: str) -> dict[str, str]:
    name, email = parseaddr(mailbox)
    return {"email": email, "name": name} if name else {"email": email}


def build_batch(messages: Sequence[OutboundMessage]) -> dict[str, Any]:
    """One request body for messages of one batch key: a personalization each, bodies as substitutions.

    Written as SendGrid's request format directly: the SDK's helper objects parse every
    address again (costing more than the rest of a batch) and drop one they cannot parse.
    """
    first = messages[0]
    body: dict[str, Any] = {
        "from": _address(first.sender or DEFAULT_SENDER),
        "subject": first.subject or "",
        "content": [{"type": "text/plain", "value": TEXT_TAG}]
        + ([{"type": "text/html", "value": HTML_TAG}] if first.html is not None else []),
        "categories": list(dict.fromkeys([first.campaign_id, first.category])),
        "custom_args": {"campaign_id": first.campaign_id},
        "personalizations": [
            {
                "to": [{"email": message.to}],
                "subject": message.subject or "",
                "custom_args": {"delivery_id": str(message.delivery_id)},
                "substitutions": {TEXT_TAG: message.text}
                | ({HTML_TAG: message.html} if message.html is not None else {}),
                **({"headers": dict(message.headers)} if message.headers else {}),
            }
            for message in messages
        ],
    }
    if first.reply_to:
        body["reply_to"] = _address(first.reply_to)
    return body


def _retry_after(headers) -> float | None:
    """Seconds to wait, from Retry-After or SendGrid's X-RateLimit-Reset (epoch seconds)."""
    if headers is None:
        return None
    if retry := headers.get("Retry-After"):
        try:
            return max(0.0, float(retry))
        except ValueError:
            return None
    if reset := headers.get("X-RateLimit-Reset"):
        try:
            return max(0.0, float(reset) - time.time())
        except ValueError:
            return None
    return None


def _errors(body: bytes | None) -> list[dict]:
    try:
        return list(json.loads(body or b"{}").get("errors") or [])
    except (ValueError, AttributeError):
        return []


def map_http_error(exc: HTTPError) -> ProviderError:
    status = exc.status_code
    errors = _errors(exc.body)
    detail = "; ".join(str(e.get("message")) for e in errors) or str(exc.reason)
    if status == 429 or status >= 500:
        return ProviderError(f"SendGrid answered {status}: {detail}", retry_after=_retry_after(exc.headers))
    if status in (401, 403):
        return ProviderError(
            f"SendGrid refused our API key ({status}: {detail}); check SENDGRID_API_KEY and its mail.send scope",
            kind="auth",
        )
    if any(str(e.get("field") or "").startswith("personalizations.0.to") for e in errors):
        return ProviderError(f"SendGrid refused the recipient: {detail}", kind="invalid_address")
    return ProviderError(f"SendGrid refused the message ({status}): {detail}", kind="rejected")


class SendGridEmail:
    name = "sendgrid"
    idempotent = False

    def __init__(self, api_key: str, host: str | None = None, timeout: float = 10.0) -> None:
        self.client = SendGridAPIClient(api_key=api_key, host=host or DEFAULT_HOST)
        self.client.client.timeout = timeout  # read by every request the SDK builds

    def _post(self, mail: dict[str, Any]) -> ProviderReceipt:
        try:
            response = self.client.send(mail)
        except HTTPError as exc:
            raise map_http_error(exc) from None
        except URLError as exc:
            # urllib wraps what fails while connecting and sending: the request never arrived whole.
            raise ProviderError(f"SendGrid could not be reached: {exc.reason}") from None
        except (OSError, http.client.HTTPException) as exc:  # a read timeout, a reset, TLS failing mid-answer
            # Sent, and no answer (a read timeout, a reset): SendGrid may have taken it.
            raise ProviderError(
                f"SendGrid did not answer after the request was sent: {exc!r}", kind="uncertain"
            ) from None
        message_id = response.headers.get("X-Message-Id") if response.headers else None
        return ProviderReceipt(self.name, message_id or "")

    def send(self, message: OutboundMessage) -> ProviderReceipt:
        return self._post(build_mail(message))

    def send_many(self, messages: Sequence[OutboundMessage]) -> list[ProviderReceipt | ProviderError]:
        """A receipt or an error per message, in order, in as few requests as SendGrid allows."""
        results: list[ProviderReceipt | ProviderError | None] = [None] * len(messages)
        groups: dict[tuple, list[int]] = {}
        alone: list[int] = []
        for index, message in enumerate(messages):
            key = _batch_key(message)
            (groups.setdefault(key, []) if key is not None else alone).append(index)
        batches = [
            g[i : i + MAX_PERSONALIZATIONS] for g in groups.values() for i in range(0, len(g), MAX_PERSONALIZATIONS)
        ]
        for batch in batches:
            if len(batch) == 1:
                alone += batch
                continue
            try:
                receipt = self._post(build_batch([messages[i] for i in batch]))
            except ProviderError as exc:
                if exc.kind in ("rejected", "invalid_address"):
                    alone += batch  # find out which message SendGrid minds, and let the others go
                    continue
                receipt = exc
            for i in batch:
                results[i] = receipt
        for i in alone:
            try:
                results[i] = self.send(messages[i])
            except ProviderError as exc:
                results[i] = exc
        return results  # type: ignore[return-value]
