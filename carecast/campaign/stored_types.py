"""validate's look at the stored contacts: a filter that compares an attribute with a boolean or a number
while the contacts hold it as text matches no one.

A comparison between values of different kinds is always false (carecast/filters/model.py), so
`attributes.vip: {eq: true}` never matches a contact whose `vip` is the text "true" — what a CSV
column imported without a type (`attr.vip` instead of `attr.vip:bool`) holds. The campaign is
valid; its audience is empty. `carecast validate` warns at the filter's line when the store says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import func, literal, select
from sqlalchemy.orm import Session

from carecast.campaign.documents import Document, Problem, problem_at
from carecast.filters.sql import json_kind
from carecast.store.models import Contact

ATTRIBUTE = "attributes."
CSV_TYPE = {"boolean": "bool", "number": "number"}


def typed_comparisons(data: Any, at: tuple = ()) -> Iterator[tuple[tuple, str, str]]:
    """(where in the YAML, attribute name, kind compared with) for each comparison of an attribute with a
    boolean or a number, anywhere in a campaign document (audience, entry, branches)."""
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(key, str) and key.startswith(ATTRIBUTE) and isinstance(value, dict):
                for op, operand in value.items():
                    if op != "exists" and (kind := _kind(operand)) is not None:  # exists: present, whatever kind
                        yield (*at, key, op), key.removeprefix(ATTRIBUTE), kind
            else:
                yield from typed_comparisons(value, (*at, key))
    elif isinstance(data, list):
        for index, item in enumerate(data):
            yield from typed_comparisons(item, (*at, index))


def _kind(operand: Any) -> str | None:
    if isinstance(operand, list) and operand:
        operand = operand[0]
    if isinstance(operand, bool):
        return "boolean"
    if isinstance(operand, int | float):
        return "number"
    return None


def held_as_text(session: Session, names: set[str]) -> dict[str, int]:
    """attribute name -> how many stored contacts hold it as text (names no contact holds so are left out)."""
    counts = {}
    for name in sorted(names):
        kind = json_kind(Contact.attributes, literal(name))
        texts = session.scalar(select(func.count()).select_from(Contact).where(kind == "string"))
        if texts:
            counts[name] = texts
    return counts


def text_warnings(document: Document, session: Session) -> list[Problem]:
    """A warning at each comparison in the document (a campaign, lifecycle.yaml) that stored contacts defeat."""
    comparisons = list(typed_comparisons(document.data))
    if not comparisons:
        return []
    texts = held_as_text(session, {name for _, name, _ in comparisons})
    return [
        problem_at(
            document.path,
            document.node_at(where),
            f"attributes.{name} is compared with a {kind}, but {texts[name]} stored contact(s) hold it as text, "
            f"which never matches: import the column as attr.{name}:{CSV_TYPE[kind]}",
        )
        for where, name, kind in comparisons
        if name in texts
    ]
