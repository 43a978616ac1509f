"""Send windows: cron expressions naming the local minutes a contact welcomes messages.

`croniter.match` re-parses its expression on every call (~100 µs); the policy
asks about one minute per message, and property tests about thousands, so each
expression is expanded once into sets and matched by membership. Expressions
with `L` or `#` (last day, nth weekday) keep croniter's own matcher.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from croniter import croniter


def _field(values: list) -> frozenset[int] | None:
    return None if values == ["*"] else frozenset(values)


@dataclass(frozen=True)
class SendWindow:
    expression: str
    minutes: frozenset[int] | None
    hours: frozenset[int] | None
    days: frozenset[int] | None
    months: frozenset[int] | None
    weekdays: frozenset[int] | None  # cron numbering: 0 = Sunday
    special: bool

    def matches(self, local: datetime) -> bool:
        if self.special:
            return croniter.match(self.expression, local)
        if self.minutes is not None and local.minute not in self.minutes:
            return False
        if self.hours is not None and local.hour not in self.hours:
            return False
        if self.months is not None and local.month not in self.months:
            return False
        day_ok = self.days is None or local.day in self.days
        weekday_ok = self.weekdays is None or local.isoweekday() % 7 in self.weekdays
        if self.days is not None and self.weekdays is not None:
            return day_ok or weekday_ok  # cron: either day field may match when both are restricted
        return day_ok and weekday_ok


@lru_cache(maxsize=4096)
def compile_window(expression: str) -> SendWindow:
    """Raises ValueError (croniter's message) for an expression croniter rejects."""
    fields, nth_weekdays = croniter.expand(expression)
    minutes, hours, days, months, weekdays = fields[:5]
    special = bool(nth_weekdays) or any(isinstance(v, str) and v != "*" for f in fields for v in f)
    if special:
        return SendWindow(expression, None, None, None, None, None, special=True)
    weekdays_set = _field(weekdays)
    if weekdays_set is not None:
        weekdays_set = frozenset(d % 7 for d in weekdays_set)
    return SendWindow(
        expression, _field(minutes), _field(hours), _field(days), _field(months), weekdays_set, special=False
    )
