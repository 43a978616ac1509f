"""Email through SendGrid's Mail Send v3 API, with the official SDK.

Every message carries the delivery id in `custom_args`, so the event webhook
finds its row, and categories for the campaign and its category, so SendGrid's
own statistics split the same way. Errors are mapped to what the deliver
activity does next (see `ProviderError`).
"""

from __future__ import annotations

import json
import time
from email.utils import parseaddr
from urllib.error import URLError

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Category, Content, CustomArg, Email, Header, Mail, ReplyTo, To

from carecast.channels.base import OutboundMessage, ProviderError, ProviderReceipt

DEFAULT_HOST = "https://api.sendgrid.com"
DEFAULT_SENDER = "Care team <care@example.com>"


def _email(address: str, cls=Email):
    name, email = parseaddr(address)
    return cls(email, name or None)


def build_mail(message: OutboundMessage) -> Mail:
    mail = Mail(
        from_email=_email(message.sender or DEFAULT_SENDER),
        to_emails=To(message.to),
        subject=message.subject or "",
    )
    mail.add_content(Content("text/plain", message.text))
    if message.html is not None:
        mail.add_content(Content("text/html", message.html))
    if message.reply_to:
        mail.reply_to = _email(message.reply_to, ReplyTo)
    for category in dict.fromkeys([message.campaign_id, message.category]):
        mail.add_category(Category(category))
    mail.add_custom_arg(CustomArg("delivery_id", str(message.delivery_id)))
    mail.add_custom_arg(CustomArg("campaign_id", message.campaign_id))
    for name, value in message.headers.items():
        mail.add_header(Header(name, value))
    return mail


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

    def send(self, message: OutboundMessage) -> ProviderReceipt:
        try:
            response = self.client.send(build_mail(message))
        except HTTPError as exc:
            raise map_http_error(exc) from None
        except (URLError, TimeoutError, ConnectionError) as exc:
            raise ProviderError(f"SendGrid did not answer: {exc}") from None
        message_id = response.headers.get("X-Message-Id") if response.headers else None
        return ProviderReceipt(self.name, message_id or "")
