"""The one interface every provider implements, and the message it carries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

ErrorKind = Literal["temporary", "rejected", "invalid_address", "unsubscribed", "auth", "uncertain"]

ChannelName = Literal["email", "sms", "voice"]
CHANNELS: tuple[ChannelName, ...] = ("email", "sms", "voice")


@dataclass(frozen=True)
class OutboundMessage:
    """A rendered message ready for a provider.

    `delivery_id` is the row reserved for it in `deliveries`; providers pass it
    along (SendGrid custom_args, Twilio callback URL) so feedback finds its row.
    `sender` and `reply_to` are "Name <address>" strings; `locale` picks the voice.
    """

    delivery_id: int
    channel: ChannelName
    to: str
    contact_id: str
    campaign_id: str
    text: str
    subject: str | None = None
    html: str | None = None
    sender: str | None = None
    reply_to: str | None = None
    category: str = "transactional"
    locale: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ProviderReceipt:
    provider: str
    message_id: str
    segments: int | None = None  # SMS: how many segments the provider bills


class Provider(Protocol):
    name: str
    # True when handing the same delivery over twice cannot reach the customer twice
    # (the outbox writes one file per delivery id); such a provider is simply retried
    # after a crash in the middle of a send, whatever the category.
    idempotent: bool

    def send(self, message: OutboundMessage) -> ProviderReceipt:
        """Hands the message over; raises ProviderError when the provider refuses it."""
        ...


class ProviderError(Exception):
    """A provider refused or failed a message.

    `kind` says what the deliver activity does about it:
      temporary        try again later (429, 5xx, timeouts), after `retry_after` seconds if known
      rejected         this message can never go as it is; do not retry
      invalid_address  the address cannot receive messages: suppress it, choose again
      unsubscribed     the recipient opted out at the provider (Twilio 21610): suppress, choose again
      auth             our credentials were refused: the message waits for the operator's fix (tried
                       again with a backoff until its hold deadline)
      uncertain        the request went out and no answer came: it may have been taken (never
                       retried blindly; the deliver activity decides by category)
    """

    def __init__(self, message: str, *, kind: ErrorKind = "temporary", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.kind == "temporary"
