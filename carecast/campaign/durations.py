"""Durations as marketers write them: `15m`, `2d`, `1w`, `1h30m`."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

UNITS = {"w": timedelta(weeks=1), "d": timedelta(days=1), "h": timedelta(hours=1), "m": timedelta(minutes=1),
         "s": timedelta(seconds=1)}  # fmt: skip
_WHOLE = re.compile(r"^(?:\d+[wdhms])+$")
_PART = re.compile(r"(\d+)([wdhms])")


def parse_duration(text: str) -> timedelta:
    """`1h30m` → 1:30:00. Raises ValueError with the accepted forms."""
    compact = str(text).strip().replace(" ", "")
    if not _WHOLE.match(compact):
        raise ValueError(f"{text!r} is not a duration; write a number and a unit, e.g. 15m, 2h, 3d, 1w or 1h30m")
    total = sum((int(n) * UNITS[unit] for n, unit in _PART.findall(compact)), timedelta())
    if total <= timedelta():
        raise ValueError(f"{text!r} must be longer than zero")
    return total


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in UNITS.items():
        count, seconds = divmod(seconds, int(size.total_seconds()))
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def _coerce(value: object) -> object:
    return parse_duration(value) if isinstance(value, str) else value


Duration = Annotated[timedelta, BeforeValidator(_coerce), PlainSerializer(format_duration, return_type=str)]
