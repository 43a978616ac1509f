"""The local outbox: what carecast "sends" when no provider credentials are set.

Each message becomes a file under the outbox folder (email as a real .eml with
text and HTML parts, SMS and voice as .txt) and one readable line on the console.
File names carry the delivery id, so sending the same delivery again rewrites the
same file instead of adding a duplicate.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default as email_policy
from email.utils import format_datetime, make_msgid
from pathlib import Path

from carecast.channels.base import OutboundMessage, ProviderReceipt

log = logging.getLogger("carecast.outbox")

DEFAULT_SENDER = "carecast outbox <outbox@carecast.localhost>"
PREVIEW_WORDS = 12
# Long List-Unsubscribe headers stay readable: fold at the RFC 5322 limit, not at 78.
OUTBOX_POLICY = email_policy.clone(max_line_length=998)


def gist(message: OutboundMessage) -> str:
    """What a message is about, at a glance: its subject, or its first words."""
    return message.subject or " ".join(message.text.split()[:PREVIEW_WORDS])


def summary_line(message: OutboundMessage, at: datetime) -> str:
    """One line an operator can scan: time, channel, contact, subject or first words."""
    return f"{at:%Y-%m-%d %H:%M:%S}Z  {message.channel:<5}  {message.contact_id}  {gist(message)}"


class OutboxProvider:
    name = "outbox"
    idempotent = True

    def __init__(
        self,
        directory: Path,
        echo: Callable[[str], None] = log.info,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.directory = directory
        self.echo = echo
        self.clock = clock

    def path_for(self, message: OutboundMessage) -> Path:
        suffix = "eml" if message.channel == "email" else "txt"
        return self.directory / f"{message.delivery_id:010d}-{message.channel}.{suffix}"

    def send(self, message: OutboundMessage) -> ProviderReceipt:
        now = self.clock()
        path = self.path_for(message)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # messages hold addresses: the owner's only
        if message.channel == "email":
            body = self._email_bytes(message, now)
        else:
            body = f"To: {message.to}\nChannel: {message.channel}\n\n{message.text}\n".encode()
        tmp = path.with_suffix(path.suffix + ".tmp")
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as file:
            file.write(body)
        tmp.replace(path)  # readers never see half a message
        self.echo(summary_line(message, now))
        return ProviderReceipt(provider=self.name, message_id=f"outbox-{message.delivery_id}")

    @staticmethod
    def _email_bytes(message: OutboundMessage, now: datetime) -> bytes:
        email = EmailMessage()
        email["From"] = message.sender or DEFAULT_SENDER
        email["To"] = message.to
        email["Subject"] = message.subject or ""
        email["Date"] = format_datetime(now)
        email["Message-ID"] = make_msgid(idstring=str(message.delivery_id), domain="carecast.localhost")
        for name, value in message.headers.items():
            email[name] = value
        email.set_content(message.text)
        if message.html is not None:
            email.add_alternative(message.html, subtype="html")
        return email.as_bytes(policy=OUTBOX_POLICY)
