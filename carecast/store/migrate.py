"""Alembic, driven from code: `carecast db upgrade` and every start of `carecast dev`."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Brings the schema up to `revision` (the newest by default); safe to repeat."""
    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    command.downgrade(alembic_config(engine), revision)


class StoreNotReadyError(RuntimeError):
    """The database is not at the schema this code expects."""


def check_schema(engine: Engine) -> None:
    """Raises StoreNotReadyError naming the command that fixes it, unless the store is at head."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    if current != head:
        state = "has no carecast schema" if current is None else f"is at schema {current}, not {head}"
        raise StoreNotReadyError(
            f"the store {engine.url.render_as_string(hide_password=True)} {state}; run `carecast db upgrade`"
        )
