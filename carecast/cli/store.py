"""`db upgrade`."""

from __future__ import annotations

from carecast.cli.common import (
    db_app,
    fail,
    load_settings,
    say,
)
from carecast.config import hide_password


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the store's schema to the newest migration."""
    from sqlalchemy.exc import OperationalError

    from carecast.store.db import make_engine
    from carecast.store.migrate import upgrade

    settings = load_settings()
    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
    except OperationalError as exc:  # the database itself does not answer
        fail(f"cannot open the store {hide_password(settings.database_url)}: {str(exc.orig).splitlines()[0]}")
    finally:
        engine.dispose()
    say(f"store {hide_password(settings.database_url)} is at the newest schema")
