"""The one interface every provider implements, and the message it carries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

ChannelName = Literal["email", "sms", "voice"]
CHANNELS: tuple[ChannelName, ...] = ("email", "sms", "voice")


@dataclass(frozen=True)
class OutboundMessage:
    """A rendered message ready for a provider.

    `delivery_id` is the row reserved for it in `deliveries`; providers pass it
    along (SendGrid custom_args, Twilio callback URL) so feedback finds its row.
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
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ProviderReceipt:
    provider: str
    message_id: str


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
    """A provider refused or failed a message. `retryable` tells Temporal whether to try again."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable
