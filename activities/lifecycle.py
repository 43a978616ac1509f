"""Recomputing lifecycle stages with one CASE expression per page, and announcing the moves."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import case, literal, select, update
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.client import Client

from carecast.campaign.lifecycle import Lifecycle
from carecast.clock import Clock
from carecast.filters.model import parse_filter
from carecast.filters.sql import to_sql
from carecast.intake.record import record_stage_moves
from carecast.intake.relay import Relay
from carecast.store.models import Contact, utcnow
from workflows.lifecycle_contract import HEARTBEAT_EVERY, RECOMPUTE_STAGES, RecomputePage, RecomputeResult

T = TypeVar("T")


def target_stage(lifecycle: Lifecycle, as_of):
    """A SQL expression naming each contact's stage: the first stage whose rule matches."""
    ruled = [(to_sql(parse_filter(stage.when), as_of), literal(stage.name)) for stage in lifecycle.stages if stage.when]
    fallback = lifecycle.stages[-1].name if lifecycle.stages[-1].when is None else None
    return case(*ruled, else_=literal(fallback))


class LifecycleActivities:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        lifecycle: Lifecycle | None,
        client: Callable[[], Client],
        task_queue: str,
        clock: Clock = utcnow,
    ) -> None:
        self.sessions = sessions
        self.lifecycle = lifecycle
        self.client = client
        self.task_queue = task_queue
        self.clock = clock

    def move_page(self, page: RecomputePage) -> tuple[list[int], int, int, str | None]:
        """Moves a page's contacts and writes their announcements in the same transaction.

        Returns the outbox rows, the rows read, the contacts moved and the last contact id. The
        activity's work, and what `carecast simulate` runs itself at each recompute.
        """
        target = target_stage(self.lifecycle, page.as_of).label("target")
        query = select(Contact.id, Contact.lifecycle_stage, target).order_by(Contact.id).limit(page.limit)
        if page.after is not None:
            query = query.where(Contact.id > page.after)
        with self.sessions.begin() as session:
            rows = session.execute(query).all()
            moves = [(cid, old, new) for cid, old, new in rows if old != new]
            by_target: dict[str | None, list[str]] = defaultdict(list)
            for cid, _, new in moves:
                by_target[new].append(cid)
            for stage, ids in by_target.items():
                session.execute(update(Contact).where(Contact.id.in_(ids)).values(lifecycle_stage=stage))
            # A retried page finds its moves made and writes nothing new; the first attempt's rows still go out.
            signals = record_stage_moves(session, moves, page.as_of.strftime("%Y%m%dT%H%M%SZ"), self.clock())
        return signals, len(rows), len(moves), rows[-1][0] if rows else None

    @activity.defn(name=RECOMPUTE_STAGES)
    async def recompute_stages(self, page: RecomputePage) -> RecomputeResult:
        if self.lifecycle is None:
            return RecomputeResult(last_contact_id=None, rows=0, moved=0)
        signals, rows, moved, last = await heartbeating(asyncio.to_thread(self.move_page, page))
        await heartbeating(Relay(self.client(), self.sessions, self.task_queue).send(signals), last)
        return RecomputeResult(last_contact_id=last, rows=rows, moved=moved)


async def heartbeating(work: Awaitable[T], *details: Any) -> T:
    """Awaits `work`, heartbeating every HEARTBEAT_EVERY meanwhile (and once at the start)."""
    task = asyncio.ensure_future(work)
    while True:
        activity.heartbeat(*details)
        done, _ = await asyncio.wait({task}, timeout=HEARTBEAT_EVERY.total_seconds())
        if done:
            return task.result()
