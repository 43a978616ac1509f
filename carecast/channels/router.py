"""One provider per channel, behind the single `Provider` interface the deliver activity uses."""

from __future__ import annotations

from collections.abc import Mapping

from carecast.channels.base import OutboundMessage, Provider, ProviderError, ProviderReceipt


class Unconfigured:
    """Stands for a channel no provider is configured for; every send says what to set."""

    name = "unconfigured"
    idempotent = True  # nothing ever leaves

    def __init__(self, channel: str, setting: str) -> None:
        self.channel, self.setting = channel, setting

    def send(self, message: OutboundMessage) -> ProviderReceipt:
        raise ProviderError(f"no provider is configured for {self.channel}: set {self.setting}", kind="auth")


class ChannelRouter:
    name = "router"

    def __init__(self, providers: Mapping[str, Provider]) -> None:
        self.providers = dict(providers)
        # A crash mid-send is only harmless when no channel could have reached the customer.
        self.idempotent = all(p.idempotent for p in self.providers.values())

    def send(self, message: OutboundMessage) -> ProviderReceipt:
        return self.providers[message.channel].send(message)
