"""Engines and sessions for SQLite (the embedded default) and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BEGIN = "carecast_sqlite_begin"


def make_engine(url: str, **kwargs) -> Engine:
    """An engine for `url`; SQLite gets WAL, enforced foreign keys and a busy timeout.

    A `postgresql://` URL is driven by psycopg 3, the driver carecast installs.
    """
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True, **kwargs)

    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, connect_args={"timeout": 30}, **kwargs)

    @event.listens_for(engine, "connect")
    def _sqlite_connect(dbapi_connection, _record):
        # pysqlite's own transaction handling delays BEGIN and cannot take the write
        # lock up front; carecast emits BEGIN itself (SQLAlchemy's pysqlite recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(connection):
        mode = connection.get_execution_options().get(SQLITE_BEGIN, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def make_locking_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions for read-check-write transactions that must not interleave.

    On SQLite each transaction begins IMMEDIATE (it holds the database's write lock
    from its first statement); on PostgreSQL take row locks with `FOR UPDATE`
    (see `carecast.store.locks`), which SQLite ignores because it needs none.
    """
    if engine.dialect.name == "sqlite":
        engine = engine.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
    return sessionmaker(engine, expire_on_commit=False)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def ping(engine: Engine) -> None:
    """Raises if the database cannot answer a trivial query."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
