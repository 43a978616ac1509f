"""The plain data the policy decides over. No I/O, no ORM objects: the caller loads these."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Literal

Category = Literal["transactional", "care", "marketing"]


@dataclass(frozen=True)
class QuietHours:
    """A daily span of local wall-clock time with no messages; wraps midnight when start > end."""

    start: time
    end: time

    def contains(self, wall: time) -> bool:
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= wall < self.end
        return wall >= self.start or wall < self.end

    def covers(self, other: QuietHours) -> bool:
        """Whether every quiet minute of `other` is quiet here too."""
        return all(self.contains(minute) for minute in _MINUTES if other.contains(minute))


_MINUTES = tuple(time(m // 60, m % 60) for m in range(24 * 60))


@dataclass(frozen=True)
class CapRule:
    """At most `max` messages per rolling `window`, counting deliveries of `categories`.

    Only marketing is ever held back by a cap; care counts toward caps that list it.
    With `channel`, only deliveries on that channel count and only that channel is capped.
    """

    name: str
    max: int
    window: timedelta
    categories: frozenset[str] = frozenset({"marketing"})
    channel: str | None = None


@dataclass(frozen=True)
class EmailIdentity:
    """Who emails come from, and what their footers and List-Unsubscribe headers carry."""

    sender: str = "Care team <care@example.com>"
    reply_to: str | None = None
    postal_address: str | None = None
    unsubscribe_mailto: str | None = None


@dataclass(frozen=True)
class HouseRules:
    default_timezone: str = "UTC"
    quiet_hours: QuietHours | None = None
    # Stricter quiet hours where a law asks for them, by a contact's region: "US-FL" (a subdivision,
    # ISO 3166-2) or "US" (a country). They add to the house's: a region may only add quiet time.
    regional_quiet_hours: Mapping[str, QuietHours] = field(default_factory=dict)
    caps: tuple[CapRule, ...] = ()
    # Messages per second each channel's provider is handed, across all workers (absent: unpaced).
    send_rates: Mapping[str, float] = field(default_factory=dict)
    reserved_for_care: float = 0.2  # of each send rate, for transactional and care messages (store/pacing.py)
    email: EmailIdentity = field(default_factory=EmailIdentity)

    def quiet_hours_for(self, region: str | None) -> tuple[QuietHours, ...]:
        """The house's quiet hours, with those of the contact's region and of its country."""
        regional = ()
        if region:
            country = region.partition("-")[0]
            regional = tuple(self.regional_quiet_hours[r] for r in dict.fromkeys((region, country))
                             if r in self.regional_quiet_hours)  # fmt: skip
        return tuple(q for q in (self.quiet_hours, *regional) if q is not None)


def rules_source(rules: HouseRules | Callable[[], HouseRules]) -> Callable[[], HouseRules]:
    """Fixed rules (tests, tools) or a source of the current ones (workers: the deployed rules)."""
    return rules if callable(rules) else (lambda: rules)


@dataclass(frozen=True)
class ContactView:
    id: str
    email: str | None = None
    phone: str | None = None
    timezone: str | None = None
    region: str | None = None  # the `region` attribute, upper case: "US-FL"


@dataclass(frozen=True)
class PreferenceView:
    """What the contact asked for; every field can only tighten the house rules."""

    consent: Mapping[str, bool] = field(default_factory=lambda: {"email": True})
    topics: Mapping[str, bool] = field(default_factory=dict)
    marketing: bool = True  # False: unsubscribed from all marketing, whatever the topic
    preferred_channels: tuple[str, ...] = ()
    quiet_hours: QuietHours | None = None
    send_windows: tuple[str, ...] = ()
    frequency_limit: CapRule | None = None
    paused_until: datetime | None = None


@dataclass(frozen=True)
class Message:
    """One intended message: the step's channels and category, and how long it may wait."""

    category: Category
    channels: tuple[str, ...]
    topic: str | None = None
    urgent: bool = False
    on_cap: Literal["skip", "defer"] = "skip"
    held_since: datetime | None = None
    max_hold: timedelta | None = None
    campaign_hold: Literal["paused", "stopped"] | None = None  # an operator's hold on the whole campaign

    @property
    def hold_deadline(self) -> datetime | None:
        if self.held_since is None or self.max_hold is None:
            return None
        return self.held_since + self.max_hold


@dataclass(frozen=True)
class SentDelivery:
    """A delivery that counts toward caps: sent, or reserved and on its way."""

    at: datetime
    category: str
    channel: str
