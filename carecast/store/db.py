"""Engines and sessions for SQLite (the embedded default) and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker


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
        # carecast emits BEGIN itself (SQLAlchemy's pysqlite recipe) so that it can be
        # IMMEDIATE: a transaction that reads and then writes would otherwise fail at
        # once with "database is locked" when another writer committed in between
        # (WAL's stale-snapshot rule ignores busy_timeout). Readers still run
        # concurrently in WAL mode; only writers queue, which is what a check-then-write
        # such as a frequency-capped send needs.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # WAL: durable across app crashes, no fsync per commit
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(connection):
        # A session that only reads (StoreSessions() rather than .begin()) needs no write lock: in WAL
        # mode it reads its snapshot while writers go on.
        reads = connection.get_execution_options().get(READS_ONLY)
        connection.exec_driver_sql("BEGIN" if reads else "BEGIN IMMEDIATE")

    return engine


READS_ONLY = "carecast_reads_only"


class StoreSessions(sessionmaker):
    """Sessions of the store: `sessions.begin()` for a transaction that writes (on SQLite it takes the
    write lock at once), `sessions()` for one that only reads (on SQLite it takes none)."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine.execution_options(**{READS_ONLY: True}), expire_on_commit=False)
        self.engine = engine
        self.writes = sessionmaker(engine, expire_on_commit=False)

    def begin(self):
        return self.writes.begin()


def make_sessionmaker(engine: Engine) -> StoreSessions:
    return StoreSessions(engine)


def ping(engine: Engine) -> None:
    """Raises if the database cannot answer a trivial query."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
