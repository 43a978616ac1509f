"""Evaluating a filter in Python, with exactly the semantics of its SQL form."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from carecast.filters.model import All, AnyOf, Compare, Filter, Not

MISSING = object()
ISO_SECONDS = "%Y-%m-%dT%H:%M:%S"


def kind(value: Any) -> str | None:
    """The JSON kind of a value as both databases see it: boolean, number, string or None."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


def lookup(node: Compare, contact: Mapping[str, Any], event: Mapping[str, Any] | None) -> Any:
    field = node.field
    if field.scope == "column":
        value = contact.get(field.name)
    elif field.scope == "attributes":
        value = (contact.get("attributes") or {}).get(field.name, MISSING)
    else:
        value = (event or {}).get(field.name, MISSING)
    return MISSING if value is None else value


def _compare(node: Compare, value: Any, now: datetime) -> bool:
    op, operand = node.op, node.value
    if op == "exists":
        return (value is not MISSING) == operand
    if value is MISSING:
        return False
    if op in ("older_than", "within"):
        cutoff = now - operand
        if isinstance(value, datetime):
            return value < cutoff if op == "older_than" else value >= cutoff
        if not isinstance(value, str):
            return False
        text = cutoff.strftime(ISO_SECONDS)  # attributes hold ISO-8601 UTC text: compare as text
        return value < text if op == "older_than" else value >= text
    if op in ("in", "not_in"):
        if kind(value) != kind(operand[0]):  # parse_filter makes every list one kind
            return False
        return (value in operand) == (op == "in")
    if kind(value) != kind(operand):
        return False
    return {
        "eq": value == operand,
        "ne": value != operand,
        "gt": value > operand,
        "gte": value >= operand,
        "lt": value < operand,
        "lte": value <= operand,
    }[op]


def matches(node: Filter, contact: Mapping[str, Any], now: datetime, event: Mapping[str, Any] | None = None) -> bool:
    """Whether a contact (its columns and `attributes`, as a mapping) passes the filter at `now`."""
    if isinstance(node, Compare):
        return _compare(node, lookup(node, contact, event), now)
    if isinstance(node, Not):
        return not matches(node.item, contact, now, event)
    if isinstance(node, All):
        return all(matches(item, contact, now, event) for item in node.items)
    if isinstance(node, AnyOf):
        return any(matches(item, contact, now, event) for item in node.items)
    raise TypeError(f"not a filter: {node!r}")
