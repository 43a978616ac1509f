"""The types an imported attribute may be declared with: `attr.vip:bool`, `attr.visits:int`, ...

A CSV cell is text; a filter such as `attributes.vip: {eq: true}` compares with a boolean,
and a comparison between different types is always false. So a column says what its
cells are, and each cell is read as that type (or its row is refused, by line):

| type | cells | stored as |
|---|---|---|
| `text` (no type) | anything | the text |
| `bool` | true/false, yes/no, 1/0 (any case) | true or false |
| `int` | whole numbers: 3, -12 | a number |
| `number` | 2.5, 1e3 | a number |
| `datetime` | ISO 8601 with a zone: 2026-11-02T09:30:00+01:00, ...Z | UTC text (2026-11-02T08:30:00+00:00) |
| `date` | 2026-11-02 | the same text |

Times are kept as UTC text because that is what `older_than` and `within` compare.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

TRUE, FALSE = {"true", "yes", "1"}, {"false", "no", "0"}


def _bool(cell: str) -> bool:
    word = cell.lower()
    if word in TRUE | FALSE:
        return word in TRUE
    raise ValueError(f"{cell!r} is not a bool: write true or false (yes/no, 1/0)")


def _int(cell: str) -> int:
    try:
        return int(cell)
    except ValueError:
        raise ValueError(f"{cell!r} is not a whole number") from None


def _number(cell: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise ValueError(f"{cell!r} is not a number: write it with a dot, e.g. 12.5") from None
    if not math.isfinite(value):
        raise ValueError(f"{cell!r} is not a finite number")
    return value


def _datetime(cell: str) -> str:
    try:
        moment = datetime.fromisoformat(cell)
    except ValueError:
        raise ValueError(f"{cell!r} is not an ISO 8601 time, e.g. 2026-11-02T09:30:00+01:00") from None
    if moment.tzinfo is None and "T" not in cell and " " not in cell:
        raise ValueError(f"{cell!r} is a date with no time: write {cell}T00:00:00Z, or declare the column :date")
    if moment.tzinfo is None:
        raise ValueError(f"{cell!r} has no time zone: add one, e.g. {cell}+01:00 or {cell}Z")
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _date(cell: str) -> str:
    try:
        return date.fromisoformat(cell).isoformat()
    except ValueError:
        raise ValueError(f"{cell!r} is not a date, e.g. 2026-11-02") from None


@dataclass(frozen=True)
class AttributeType:
    name: str
    read: Callable[[str], object]


TYPES = {t.name: t for t in (AttributeType("text", str), AttributeType("bool", _bool), AttributeType("int", _int),
                             AttributeType("number", _number), AttributeType("datetime", _datetime),
                             AttributeType("date", _date))}  # fmt: skip


def attribute_type(name: str) -> AttributeType:
    if name not in TYPES:
        raise ValueError(f"unknown type {name!r}; use {', '.join(TYPES)}")
    return TYPES[name]
