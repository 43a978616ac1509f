"""SQL expressions written differently on SQLite and PostgreSQL, for the hot paths of a page."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from carecast.store.types import JsonDocument


def one_of(session: Session, column: ColumnElement[Any], values: Iterable[Any]) -> ColumnElement[bool]:
    """`column IN (values)`, for lists of a page's size (a thousand ids or more).

    SQLite takes the usual IN list. On PostgreSQL the list is one array parameter,
    `column = ANY(:values)`: a statement with a thousand placeholders is rendered by
    SQLAlchemy, split by psycopg and parsed by the server again on every call, where
    the array form is one short statement that all three remember.
    """
    values = list(values)
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, values, type_=ARRAY(column.type)))
    return column.in_(values)


class json_append(FunctionElement):
    """`json_append(document, item)`: a JSON array column with one item added at its end, in SQL.

    Lets an UPDATE add to a row's history without reading the row first.
    """

    type = JsonDocument
    name = "json_append"
    inherit_cache = True


@compiles(json_append, "postgresql")
def _json_append_postgresql(element, compiler, **kw):
    document, item = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"({document} || jsonb_build_array({item}))"


@compiles(json_append, "sqlite")
def _json_append_sqlite(element, compiler, **kw):
    document, item = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"json_insert({document}, '$[#]', json({item}))"
