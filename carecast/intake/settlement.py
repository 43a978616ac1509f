"""What delivering outbox rows leaves to write: rows done, journeys started or ended, rows to retry.

The relay loop writes it at once. A writer's fast path (an event from the API) leaves it
to the next transaction of this process on the same store — the next event's record,
or a flush a second later — rather than a transaction of its own, which on SQLite
(one writer at a time) would stand in front of every next event. Lost if the process
dies first, it costs a repeat and nothing more: the relay delivers a row again after
its lease, and a journey ignores what it has heard before.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import weakref
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, func, update
from sqlalchemy.orm import Session, sessionmaker

from carecast.store.db import READS_ONLY
from carecast.store.models import Enrolment, JourneySignal, utcnow

FLUSH_AFTER_SECONDS = 1.0
log = logging.getLogger(__name__)


@dataclass
class Settlement:
    done: set[int] = field(default_factory=set)  # outbox rows delivered: they go
    started: set[int] = field(default_factory=set)  # enrolments whose journey Temporal now knows
    ended: dict[int, str | None] = field(default_factory=dict)  # enrolments whose journey is over → how (if known)
    failed: dict[int, tuple[int, str]] = field(default_factory=dict)  # row id -> (attempts so far, error)

    def __bool__(self) -> bool:
        return bool(self.done or self.started or self.ended or self.failed)

    def add(self, other: Settlement) -> None:
        self.done |= other.done
        self.started |= other.started
        for enrolment_id, how in other.ended.items():
            self.ended[enrolment_id] = how or self.ended.get(enrolment_id)
        self.failed.update(other.failed)

    def write(self, session: Session, now: datetime | None = None) -> None:
        now = now or utcnow()
        gone = delete(JourneySignal).where(JourneySignal.id.in_(sorted(self.done))) if self.done else None
        # Each is written once; an end may be written before the start that the API process settles later.
        moves = [(self.started, Enrolment.started_at, {Enrolment.started_at: now})] if self.started else []
        for how in {*self.ended.values()}:  # how it ended only the journey's own activity knows; the relay learns that
            ids = {enrolment_id for enrolment_id, said in self.ended.items() if said == how}  # it did, later or sooner
            if how is None:
                moves.append((ids, Enrolment.ended_at, {Enrolment.ended_at: now}))
            else:
                ended = {Enrolment.ended_by: how, Enrolment.ended_at: func.coalesce(Enrolment.ended_at, now)}
                moves.append((ids, Enrolment.ended_by, ended))
        for ids, unset, values in moves:
            moved = update(Enrolment).where(Enrolment.id.in_(sorted(ids)), unset.is_(None)).values(values)
            if gone is not None and session.get_bind().dialect.name == "postgresql":
                # One round trip for both: the delete as a data-modifying CTE of the update.
                moved, gone = moved.add_cte(gone.cte("done")), None
            session.execute(moved)
        if gone is not None:
            session.execute(gone)
        for row_id, (attempts, error) in self.failed.items():
            session.execute(
                update(JourneySignal)
                .where(JourneySignal.id == row_id)
                .values(attempts=attempts + 1, last_error=error[:2000],
                        next_attempt_at=now + timedelta(seconds=min(60, 2 ** (attempts + 1))))
            )  # fmt: skip


class _Waiting:
    """This process's settlements not written yet, for one store."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.settlement = Settlement()
        self.flush_due = False


_waiting: weakref.WeakKeyDictionary[Engine, _Waiting] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


def _for(engine: Engine) -> _Waiting:
    with _registry_lock:
        return _waiting.setdefault(engine, _Waiting())


def write_waiting(session: Session) -> None:
    """Writes, in the caller's transaction, what this process left to write on the session's store."""
    bind = session.get_bind()
    if bind.get_execution_options().get(READS_ONLY):  # its engine is not the store's: nothing would be found
        raise TypeError("write_waiting needs a session that writes: sessions.begin(), not sessions()")
    waiting = _for(bind.engine)
    with waiting.lock:
        settlement, waiting.settlement = waiting.settlement, Settlement()
    if settlement:
        settlement.write(session)


def leave(sessions: sessionmaker[Session], settlement: Settlement) -> None:
    """Leaves `settlement` to the next transaction, and makes sure one comes within a second."""
    engine = sessions.engine
    waiting = _for(engine)
    with waiting.lock:
        waiting.settlement.add(settlement)
        if waiting.flush_due:
            return
        waiting.flush_due = True
    asyncio.get_running_loop().call_later(FLUSH_AFTER_SECONDS, _flush_soon, sessions, waiting)


def _flush_soon(sessions: sessionmaker[Session], waiting: _Waiting) -> None:
    waiting.flush_due = False
    _background.add(task := asyncio.ensure_future(asyncio.to_thread(flush, sessions)))
    task.add_done_callback(functools.partial(_flushed, sessions))


def _flushed(sessions: sessionmaker[Session], task: asyncio.Future) -> None:
    """A flush that failed kept what it held (see `flush`): try again a second later."""
    _background.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.warning("writing a settlement failed, trying again: %s", task.exception())
        leave(sessions, Settlement())


_background: set[asyncio.Future] = set()  # strong references to flushes in flight


def flush(sessions: sessionmaker[Session]) -> None:
    """Writes what this process left to write, in a transaction of its own (if there is anything).

    If the transaction fails, what it held is left for the next one.
    """
    waiting = _for(sessions.engine)
    with waiting.lock:
        settlement, waiting.settlement = waiting.settlement, Settlement()
    if not settlement:
        return
    try:
        with sessions.begin() as session:
            settlement.write(session)
    except BaseException:
        with waiting.lock:
            settlement.add(waiting.settlement)
            waiting.settlement = settlement
        raise
