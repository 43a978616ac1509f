"""Choosing the channel a message goes out on.

The step lists the channels it may use; the contact's preferred order comes
first, and a channel is usable only with an address, consent, and no
suppression of that address.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from carecast.policy.decision import Send, Skip


@dataclass(frozen=True)
class Reachability:
    """Where and how a contact may be reached: addresses and per-channel consent."""

    addresses: Mapping[str, str | None]
    consent: Mapping[str, bool]
    preferred: Sequence[str] = ()


def ordered_channels(step_channels: Sequence[str], preferred: Sequence[str]) -> list[str]:
    """The step's channels, the contact's preferred ones first, each in its own order."""
    first = [c for c in preferred if c in step_channels]
    return first + [c for c in step_channels if c not in first]


def choose_channel(
    step_channels: Sequence[str],
    reach: Reachability,
    suppressed: Collection[tuple[str, str]],
) -> Send | Skip:
    """The first usable channel, or a Skip naming why the most preferred one failed.

    `suppressed` holds (channel, address) pairs that no campaign may use.
    """
    reasons: list[str] = []
    for channel in ordered_channels(step_channels, reach.preferred):
        address = reach.addresses.get(channel)
        if not address:
            reasons.append("no_address")
        elif not reach.consent.get(channel, False):
            reasons.append("no_consent")
        elif (channel, address) in suppressed:
            reasons.append("suppressed")
        else:
            return Send(channel=channel, address=address)
    return Skip(reason=reasons[0] if reasons else "no_address")
