"""Writes that must behave the same on SQLite and PostgreSQL: upserts, row locks, bulk inserts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import JSON, Row, Table, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from carecast.store.expressions import one_of
from carecast.store.models import Base, Contact


def upsert(
    session: Session,
    model: type[Base],
    rows: Sequence[Mapping[str, Any]],
    conflict_columns: Iterable[str],
    update_columns: Iterable[str] = (),
) -> int:
    """INSERT ... ON CONFLICT on both databases; returns how many rows were inserted or updated.

    With no `update_columns`, rows whose key exists are left alone (DO NOTHING).
    """
    if not rows:
        return 0
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    table = model.__table__
    conflict_columns = list(conflict_columns)
    update_columns = list(update_columns)
    statement = insert(table).values(list(rows))
    if update_columns:
        statement = statement.on_conflict_do_update(
            index_elements=conflict_columns, set_={c: statement.excluded[c] for c in update_columns}
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=conflict_columns)
    # RETURNING counts the rows touched on both databases (psycopg's rowcount is -1 here).
    statement = statement.returning(*(table.c[c] for c in conflict_columns))
    return len(session.execute(statement).all())


def insert_new(
    session: Session, model: type[Base], row: Mapping[str, Any], conflict_columns: Iterable[str], returning
) -> Any:
    """INSERTs the row unless its key exists (ON CONFLICT DO NOTHING); `returning` of the new row, or None."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = insert(model.__table__).values(dict(row)).on_conflict_do_nothing(index_elements=list(conflict_columns))
    return session.execute(statement.returning(returning)).scalar()


def lock_contact_rows(session: Session, contact_ids: Iterable[str]) -> dict[str, Row]:
    """`lock_contacts` as plain rows (same attribute names), for a batch that only reads them."""
    table = Contact.__table__
    ids = sorted(set(contact_ids))
    query = select(table).where(one_of(session, table.c.id, ids)).order_by(table.c.id).with_for_update()
    return {row.id: row for row in session.execute(query)}


def lock_contacts(session: Session, contact_ids: Iterable[str]) -> dict[str, Contact]:
    """Loads contacts holding their row locks until the transaction ends.

    PostgreSQL: SELECT ... FOR UPDATE, in id order so two batches cannot deadlock.
    SQLite has no row locks and needs none: carecast's SQLite transactions begin
    IMMEDIATE and hold the write lock throughout.
    """
    query = select(Contact).where(Contact.id.in_(sorted(set(contact_ids)))).order_by(Contact.id).with_for_update()
    return {contact.id: contact for contact in session.scalars(query)}


# A COPY costs more round trips than an INSERT; it pays from a few rows on (a journey's one
# message goes by INSERT, a broadcast page by COPY).
COPY_FROM_ROWS = 10


def bulk_insert(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Inserts rows in the session's transaction: COPY on PostgreSQL for many rows, else an INSERT.

    For a page of a thousand deliveries COPY takes about half the CPU of an executemany
    INSERT, on both sides of the connection. Column defaults are not applied: every
    row must carry every column it needs, and all rows the same keys.
    """
    if not rows:
        return
    if session.get_bind().dialect.name != "postgresql" or len(rows) < COPY_FROM_ROWS:
        session.execute(insert(table), list(rows))
        return
    from psycopg import sql  # PostgreSQL's driver is an optional dependency
    from psycopg.types.json import Jsonb

    columns = list(rows[0])
    is_json = [isinstance(table.c[name].type, JSON) for name in columns]
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(sql.Identifier(name) for name in columns)
    )
    connection = session.connection().connection.driver_connection
    with connection.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row([Jsonb(row[n]) if json else row[n] for n, json in zip(columns, is_json, strict=True)])
