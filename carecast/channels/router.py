"""One provider per channel, behind the single `Provider` interface the deliver activity uses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from carecast.channels.base import OutboundMessage, Provider, ProviderError, ProviderReceipt
from carecast.channels.handover import hand_over


class Unconfigured:
    """Stands for a channel no provider is configured for; every send says what to set."""

    name = "unconfigured"
    idempotent = True  # nothing ever leaves

    def __init__(self, channel: str, setting: str) -> None:
        self.channel, self.setting = channel, setting

    def send(self, message: OutboundMessage) -> ProviderReceipt:
        raise ProviderError(f"no provider is configured for {self.channel}: set {self.setting}", kind="auth")


def unconfigured_channels(provider: Provider) -> dict[str, str]:
    """The channels no provider is configured for, each with the setting that would configure it."""
    providers = getattr(provider, "providers", {})
    return {channel: p.setting for channel, p in providers.items() if isinstance(p, Unconfigured)}


class ChannelRouter:
    name = "router"

    def __init__(self, providers: Mapping[str, Provider]) -> None:
        self.providers = dict(providers)
        # A crash mid-send is only harmless when no channel could have reached the customer.
        self.idempotent = all(p.idempotent for p in self.providers.values())

    def send(self, message: OutboundMessage) -> ProviderReceipt:
        return self.providers[message.channel].send(message)

    def send_many(self, messages: Sequence[OutboundMessage]) -> list[ProviderReceipt | ProviderError]:
        """Each channel's messages to its provider, batched where that provider can."""
        answers: list[ProviderReceipt | ProviderError | None] = [None] * len(messages)
        by_channel: dict[str, list[int]] = {}
        for index, message in enumerate(messages):
            by_channel.setdefault(message.channel, []).append(index)
        for channel, indexes in by_channel.items():
            handed = hand_over(self.providers[channel], [messages[i] for i in indexes])
            for index, answer in zip(indexes, handed, strict=True):
                answers[index] = answer
        return answers  # type: ignore[return-value]
