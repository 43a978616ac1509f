"""Frequency caps over rolling windows, counted from deliveries actually sent or on their way."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from carecast.policy.model import CapRule, SentDelivery


def count_window(rules: Iterable[CapRule | None], default: timedelta = timedelta(days=30)) -> timedelta:
    """How far back sent deliveries must be read for these caps: the longest window any of them counts."""
    return max((rule.window for rule in rules if rule is not None), default=default)


def counted(rule: CapRule, deliveries: Iterable[SentDelivery], now: datetime) -> list[datetime]:
    """Times of the deliveries inside the rule's window that the rule counts, oldest first.

    A delivery stamped after `now` (a racing send on a clock a moment ahead) counts too.
    """
    since = now - rule.window
    return sorted(
        d.at
        for d in deliveries
        if since < d.at and d.category in rule.categories and (rule.channel is None or d.channel == rule.channel)
    )


def frees_up_at(rule: CapRule, times: Sequence[datetime]) -> datetime:
    """When enough counted deliveries have left the window for one more message."""
    return times[len(times) - rule.max] + rule.window


def exceeded_cap(
    rules: Sequence[CapRule], channel: str, deliveries: Sequence[SentDelivery], now: datetime
) -> tuple[CapRule, datetime] | None:
    """The first rule that one more message on `channel` would break, with when it frees up."""
    for rule in rules:
        if rule.channel is not None and rule.channel != channel:
            continue
        times = counted(rule, deliveries, now)
        if len(times) >= rule.max:
            return rule, frees_up_at(rule, times) if rule.max > 0 else None
    return None
