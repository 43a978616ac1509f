"""What carecast keeps on disk is the owner's alone: it holds addresses and keys.

New files are made owner-only (the CLI's umask is 077). Homes, stores and outboxes
made by versions before that were readable by everyone on the machine; the first
command after an upgrade closes them to others, once: a folder already closed is not
walked again. Only carecast's own files are touched, never the rest of a folder that
CARECAST_HOME may point at, and only those this user owns.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sqlalchemy.engine import make_url

from carecast.config import SECRET_FILE, Settings

OTHERS = stat.S_IRWXG | stat.S_IRWXO
# What carecast dev keeps in its home besides the store and the outbox.
HOME_FILES = (SECRET_FILE, "api-key", "temporal.db", "temporal.log")


def close_to_others(settings: Settings) -> list[Path]:
    """Closes carecast's home, store, outbox and secrets to others where they are open; what changed."""
    home = settings.home
    changed = _close(home, walk=False)
    for path in (*(home / name for name in HOME_FILES), *sqlite_files(settings.database_url), settings.outbox_dir):
        changed += _close(path, walk=True)
    return changed


def _close(path: Path, walk: bool) -> list[Path]:
    """Only what this user owns: a store another account runs is its to keep."""
    if not _open_and_mine(path):
        return []
    changed = []
    for item in (path, *(sorted(path.rglob("*")) if walk and path.is_dir() else ())):
        info = item.lstat()
        if not stat.S_ISLNK(info.st_mode) and info.st_mode & OTHERS and info.st_uid == os.geteuid():
            item.chmod(stat.S_IMODE(info.st_mode) & ~OTHERS)
            changed.append(item)
    return changed


def _open_and_mine(path: Path) -> bool:
    try:
        info = path.stat()
    except OSError:
        return False
    return bool(info.st_mode & OTHERS) and info.st_uid == os.geteuid()


def sqlite_files(database_url: str) -> list[Path]:
    """The files of a SQLite store (the database, its write-ahead log, its shared memory); none for a server."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return []
    database = Path(url.database)
    return [database, database.with_name(database.name + "-wal"), database.with_name(database.name + "-shm")]
