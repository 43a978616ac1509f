"""The filter language's syntax tree, parsed from its YAML form.

    lifecycle_stage: {in: [new, active]}          # several fields in one mapping: all must hold
    attributes.vip: {eq: true}
    any:                                          # all / any / not combine filters
      - attributes.country: {eq: FR}
      - not: {attributes.opted_out: {exists: true}}
    attributes.last_order_at: {older_than: 90d}   # ISO-8601 UTC text, or created_at / updated_at

Fields: contact columns (id, email, phone, timezone, locale, lifecycle_stage,
care_agent, created_at, updated_at), `attributes.<name>`, and in a journey
`event.<name>` (a field of the triggering event's data).

Every comparison is false when the field is missing or holds a value of
another type than the one compared with; `not:` turns that around.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from carecast.campaign.durations import parse_duration

STRING_COLUMNS = ("id", "email", "phone", "timezone", "locale", "lifecycle_stage", "care_agent")
TIME_COLUMNS = ("created_at", "updated_at")
COLUMNS = STRING_COLUMNS + TIME_COLUMNS
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

VALUE_OPS = ("eq", "ne", "gt", "gte", "lt", "lte")
LIST_OPS = ("in", "not_in")
TIME_OPS = ("older_than", "within")
OPS = VALUE_OPS + LIST_OPS + TIME_OPS + ("exists",)

Scalar = str | int | float | bool


@dataclass(frozen=True)
class Field:
    scope: str  # "column", "attributes" or "event"
    name: str

    def __str__(self) -> str:
        return self.name if self.scope == "column" else f"{self.scope}.{self.name}"


@dataclass(frozen=True)
class Compare:
    field: Field
    op: str
    value: Any  # a Scalar, a tuple of Scalars, a timedelta, or a bool for `exists`


@dataclass(frozen=True)
class All:
    items: tuple[Filter, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Filter, ...]


@dataclass(frozen=True)
class Not:
    item: Filter


Filter = Compare | All | AnyOf | Not


class FilterError(ValueError):
    pass


def parse_field(text: str, allow_event: bool) -> Field:
    if text in COLUMNS:
        return Field("column", text)
    scope, _, name = text.partition(".")
    if scope == "attributes" and NAME.match(name):
        return Field("attributes", name)
    if scope == "event" and NAME.match(name):
        if not allow_event:
            raise FilterError(f"{text!r}: event fields exist only in a journey's conditions, not in an audience")
        return Field("event", name)
    raise FilterError(
        f"unknown field {text!r}; use one of {', '.join(COLUMNS)}, attributes.<name>"
        + (" or event.<name>" if allow_event else "")
    )


def _scalar(value: Any, where: str) -> Scalar:
    if isinstance(value, (str, int, float, bool)):
        return value
    raise FilterError(f"{where}: compare with a text, a number or true/false, not {value!r}")


def _compare(field: Field, op: str, value: Any) -> Compare:
    where = f"{field}: {op}"
    if op not in OPS:
        raise FilterError(f"{field}: unknown operator {op!r}; use one of {', '.join(OPS)}")
    if op == "exists":
        if not isinstance(value, bool):
            raise FilterError(f"{where}: write true or false")
        return Compare(field, op, value)
    if op in TIME_OPS:
        if field.scope == "column" and field.name not in TIME_COLUMNS:
            raise FilterError(f"{where}: {field} is not a time; {op} works on created_at, updated_at or attributes")
        try:
            return Compare(field, op, parse_duration(value))
        except ValueError as exc:
            raise FilterError(f"{where}: {exc}") from None
    if field.scope == "column" and field.name in TIME_COLUMNS:
        raise FilterError(f"{where}: compare times with older_than or within")
    if op in LIST_OPS:
        if not isinstance(value, list) or not value:
            raise FilterError(f"{where}: give a non-empty list, e.g. [a, b]")
        items = tuple(_scalar(v, where) for v in value)
        kinds = {"number" if isinstance(v, (int, float)) else type(v).__name__ for v in items}
        if "bool" in kinds or len(kinds) > 1:
            raise FilterError(f"{where}: give a list of texts or a list of numbers, not a mix")
        if field.scope == "column" and kinds != {"str"}:
            raise FilterError(f"{where}: {field} holds text; compare it with text")
        return Compare(field, op, items)
    scalar = _scalar(value, where)
    if isinstance(scalar, bool) and op not in ("eq", "ne"):
        raise FilterError(f"{where}: true/false can only be compared with eq or ne")
    if field.scope == "column" and not isinstance(scalar, str):
        raise FilterError(f"{where}: {field} holds text; compare it with text")
    return Compare(field, op, scalar)


def parse_filter(document: Any, allow_event: bool = False) -> Filter:
    """The syntax tree of a filter's YAML form; FilterError says what is wrong and what is allowed."""
    if not isinstance(document, dict) or not document:
        raise FilterError("a filter is a mapping such as {lifecycle_stage: {eq: new}}")
    parts: list[Filter] = []
    for key, value in document.items():
        if key in ("all", "any"):
            if not isinstance(value, list) or not value:
                raise FilterError(f"{key}: give a non-empty list of filters")
            items = tuple(parse_filter(item, allow_event) for item in value)
            parts.append(All(items) if key == "all" else AnyOf(items))
        elif key == "not":
            parts.append(Not(parse_filter(value, allow_event)))
        else:
            field = parse_field(str(key), allow_event)
            if not isinstance(value, dict) or not value:
                raise FilterError(f"{key}: write an operator and a value, e.g. {{eq: new}}")
            parts.extend(_compare(field, str(op), operand) for op, operand in value.items())
    return parts[0] if len(parts) == 1 else All(tuple(parts))


def uses_events(node: Filter) -> bool:
    if isinstance(node, Compare):
        return node.field.scope == "event"
    if isinstance(node, Not):
        return uses_events(node.item)
    return any(uses_events(item) for item in node.items)
