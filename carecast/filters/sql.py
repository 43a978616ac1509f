"""Compiling a filter to a SQLAlchemy expression over the contacts table.

Every comparison compiles to an expression that is never NULL: the value must be
present and of the literal's JSON kind, which is what the Python evaluator checks,
so `not:` means the same in both. JSON access is dialect-specific (json_type /
json_extract on SQLite, jsonb_typeof / ->> on PostgreSQL); text compares in code
point order on both (PostgreSQL's "C" collation), as Python does.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, false, func, literal, not_, or_, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement, FunctionElement
from sqlalchemy.types import Boolean, Float, String

from carecast.filters.evaluate import ISO_SECONDS, kind
from carecast.filters.model import All, AnyOf, Compare, Filter, Not
from carecast.store.models import Contact


class json_kind(FunctionElement):
    """The JSON kind of attributes[key] as 'boolean', 'number', 'string', 'null', ... or NULL if absent."""

    type = String()
    inherit_cache = True


@compiles(json_kind, "sqlite")
def _json_kind_sqlite(element, compiler, **kw):
    column, key = (compiler.process(arg, **kw) for arg in element.clauses)
    raw = f"json_type({column}, '$.' || {key})"
    return (
        f"(CASE {raw} WHEN 'integer' THEN 'number' WHEN 'real' THEN 'number' WHEN 'text' THEN 'string' "
        f"WHEN 'true' THEN 'boolean' WHEN 'false' THEN 'boolean' ELSE {raw} END)"
    )


@compiles(json_kind, "postgresql")
def _json_kind_postgresql(element, compiler, **kw):
    column, key = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"jsonb_typeof({column} -> {key})"


class json_text(FunctionElement):
    """attributes[key] as text (numbers and booleans in their JSON spelling)."""

    type = String()
    inherit_cache = True


@compiles(json_text, "sqlite")
def _json_text_sqlite(element, compiler, **kw):
    column, key = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"json_extract({column}, '$.' || {key})"


@compiles(json_text, "postgresql")
def _json_text_postgresql(element, compiler, **kw):
    column, key = (compiler.process(arg, **kw) for arg in element.clauses)
    return f'({column} ->> {key}) COLLATE "C"'


class json_number(FunctionElement):
    type = Float()
    inherit_cache = True


@compiles(json_number, "sqlite")
def _json_number_sqlite(element, compiler, **kw):
    column, key = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"CAST(json_extract({column}, '$.' || {key}) AS REAL)"


@compiles(json_number, "postgresql")
def _json_number_postgresql(element, compiler, **kw):
    column, key = (compiler.process(arg, **kw) for arg in element.clauses)
    # CASE, because PostgreSQL may evaluate a cast before the kind check that guards it.
    return (
        f"(CASE WHEN jsonb_typeof({column} -> {key}) = 'number' THEN CAST({column} ->> {key} AS DOUBLE PRECISION) END)"
    )


class json_true(FunctionElement):
    type = Boolean()
    inherit_cache = True


@compiles(json_true, "sqlite")
def _json_true_sqlite(element, compiler, **kw):
    column, key = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"(json_type({column}, '$.' || {key}) = 'true')"


@compiles(json_true, "postgresql")
def _json_true_postgresql(element, compiler, **kw):
    column, key = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"(({column} ->> {key}) = 'true')"


class text_c(FunctionElement):
    """A text column compared in code point order."""

    type = String()
    inherit_cache = True


@compiles(text_c, "sqlite")
def _text_c_sqlite(element, compiler, **kw):
    return compiler.process(element.clauses.clauses[0], **kw)


@compiles(text_c, "postgresql")
def _text_c_postgresql(element, compiler, **kw):
    return f'({compiler.process(element.clauses.clauses[0], **kw)}) COLLATE "C"'


def _apply(op: str, left: ColumnElement, operand) -> ColumnElement:
    if op == "in":
        return left.in_(list(operand))
    if op == "not_in":
        return left.not_in(list(operand))
    return {
        "eq": left == operand,
        "ne": left != operand,
        "gt": left > operand,
        "gte": left >= operand,
        "lt": left < operand,
        "lte": left <= operand,
    }[op]


def _column(node: Compare, now: datetime) -> ColumnElement:
    column = getattr(Contact, node.field.name)
    if node.op == "exists":
        return column.is_not(None) if node.value else column.is_(None)
    if node.op in ("older_than", "within"):
        cutoff = now - node.value
        return and_(column.is_not(None), column < cutoff if node.op == "older_than" else column >= cutoff)
    return and_(column.is_not(None), _apply(node.op, text_c(column), node.value))


def _attribute(node: Compare, now: datetime) -> ColumnElement:
    key = literal(node.field.name)
    present_kind = json_kind(Contact.attributes, key)
    if node.op == "exists":
        present = and_(present_kind.is_not(None), present_kind != "null")
        return present if node.value else not_(present)
    if node.op in ("older_than", "within"):
        cutoff = (now - node.value).strftime(ISO_SECONDS)
        text = json_text(Contact.attributes, key)
        return and_(present_kind == "string", text < cutoff if node.op == "older_than" else text >= cutoff)
    operand = node.value
    expected = kind(operand[0] if isinstance(operand, tuple) else operand)
    if expected == "boolean":
        is_true = json_true(Contact.attributes, key)
        return and_(present_kind == "boolean", is_true if (node.op == "eq") == operand else not_(is_true))
    if expected == "number":
        # Every operand a float: a list's binds take the type of its first item, and PostgreSQL casts each
        # bind to it, so `in: [0, -1.5]` would compare with -2 (-1.5 cast to an integer).
        operand = tuple(map(float, operand)) if isinstance(operand, tuple) else float(operand)
        return and_(present_kind == expected, _apply(node.op, json_number(Contact.attributes, key), operand))
    return and_(present_kind == expected, _apply(node.op, json_text(Contact.attributes, key), operand))


def to_sql(node: Filter, now: datetime) -> ColumnElement:
    """A WHERE clause over `contacts` selecting exactly the contacts `matches` accepts at `now`."""
    if isinstance(node, Compare):
        if node.field.scope == "event":
            raise ValueError(f"{node.field} cannot be part of an audience query")
        compared = _column(node, now) if node.field.scope == "column" else _attribute(node, now)
        return func.coalesce(compared, false())  # never NULL, so `not:` negates it as Python does
    if isinstance(node, Not):
        return not_(to_sql(node.item, now))
    if isinstance(node, All):
        return and_(true(), *(to_sql(item, now) for item in node.items))
    if isinstance(node, AnyOf):
        return or_(false(), *(to_sql(item, now) for item in node.items))
    raise TypeError(f"not a filter: {node!r}")
