"""The relay: from the outbox (journey_signals) to Temporal, until Temporal has it.

Each row starts or signals one journey. A row of a journey not started yet starts it
with that signal (signal-with-start, so no event can fall between enrolment and
start); a later row signals the workflow id stored on the enrolment and never starts
a finished journey again. Whoever writes rows delivers them at once (`send`); rows
still there after their lease (Temporal was down, the writer died) are delivered by
the relay loop that runs in every `carecast worker` (and so in `carecast dev`),
retried with backoff until Temporal answers. Delivering twice is harmless: a
journey ignores an event it has heard, and a start by the same id starts nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from carecast.campaign.model import Samples
from carecast.intake.outgoing import Outgoing, load_outgoing
from carecast.intake.settlement import Settlement, flush, leave, write_waiting
from carecast.store.models import JourneySignal, utcnow
from workflows import search_attributes as sa
from workflows.journey.contract import HISTORY_LIMIT, Control, JourneyEvent, JourneyInput, journey_summary
from workflows.journey.workflow import JourneyWorkflow

log = logging.getLogger("carecast.relay")

# A row the relay took is its own for this long; another relay takes it after that.
CLAIM_LEASE = timedelta(seconds=60)
ROWS_PER_ROUND = 200
# One call may take this long: a round that meets an outage gives up at the first row, not after each.
RPC_TIMEOUT = timedelta(seconds=5)
AWAY = {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED}
RELAY_EVERY_SECONDS = 1.0


# What telling a journey came to: started by this row, told, over (it ran to its end), or to try again later.
Told = Literal["started", "done", "ended", "wait"]


@dataclass
class RelayReport:
    delivered: list[str]  # workflow ids told (or started)
    waiting: list[str]  # workflow ids whose rows wait for Temporal


async def relay_now(
    temporal: Callable[[], Awaitable[Client]], sessions: sessionmaker[Session], task_queue: str, signals: list[int]
) -> RelayReport | None:
    """A writer's fast path for the rows it wrote; None when Temporal does not answer (the loop delivers them)."""
    if not signals:
        return RelayReport([], [])
    try:
        client = await temporal()
    except RuntimeError:  # the Temporal client raises RuntimeError when it cannot connect
        return None
    return await Relay(client, sessions, task_queue).send(signals)


class Relay:
    def __init__(
        self, client: Client, sessions: sessionmaker[Session], task_queue: str, history_limit: int = HISTORY_LIMIT
    ) -> None:
        self.client = client
        self.sessions = sessions
        self.task_queue = task_queue
        self.history_limit = history_limit  # how long a journey's history grows before it continues as new

    async def send(self, ids: list[int]) -> RelayReport:
        """Delivers these rows now, as they are in the store; what Temporal does not take waits for a later round."""
        report = RelayReport([], [])
        for start in range(0, len(ids), ROWS_PER_ROUND):  # a campaign's stop may tell thousands of journeys
            part = await self.deliver(await asyncio.to_thread(self._load, ids[start : start + ROWS_PER_ROUND]))
            report.delivered += part.delivered
            report.waiting += part.waiting
        return report

    async def run(self, stopping: asyncio.Event) -> None:
        """Delivers due rows every second until `stopping` is set; errors are logged, never fatal."""
        while not stopping.is_set():
            try:
                await asyncio.to_thread(flush, self.sessions)  # what this process's fast paths left to write
                ids = await asyncio.to_thread(self._claim_due)
                if ids:
                    await self.send(ids)
            except Exception:  # the store or Temporal is away: try again next round
                log.exception("relay round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), RELAY_EVERY_SECONDS)
        try:  # what the worker's last journeys left to write (their ends), before the process goes
            await asyncio.to_thread(flush, self.sessions)
        except Exception:
            log.exception("the last settlement could not be written; the relay learns it again")

    # The store side, in threads.

    def _claim_due(self) -> list[int]:
        now = utcnow()
        with self.sessions.begin() as session:
            query = (
                select(JourneySignal.id)
                .where(JourneySignal.next_attempt_at <= now)
                .order_by(JourneySignal.id)
                .limit(ROWS_PER_ROUND)
                .with_for_update(skip_locked=True)
            )
            ids = list(session.scalars(query))
            if ids:
                session.execute(
                    update(JourneySignal).where(JourneySignal.id.in_(ids)).values(next_attempt_at=now + CLAIM_LEASE)
                )
        return ids

    def _settle(self, settlement: Settlement) -> None:
        with self.sessions.begin() as session:
            write_waiting(session)
            settlement.write(session)

    def _load(self, ids: list[int]) -> list[Outgoing]:
        with self.sessions() as session:
            return load_outgoing(session, ids)

    # The Temporal side.

    async def deliver(self, rows: list[Outgoing], settle_later: bool = False) -> RelayReport:
        """Starts or signals each row's journey, then settles the rows in the store.

        With `settle_later` (a writer's fast path), the settlement is left to the next
        transaction of this process on the store (carecast/intake/settlement.py).
        """
        if not rows:
            return RelayReport([], [])
        done: list[Outgoing] = []  # told: the row goes
        started: list[Outgoing] = []  # told by starting the journey: the row goes, the enrolment is started
        ended: list[Outgoing] = []  # the journey is over: the row goes, the enrolment is ended
        failed: dict[int, str] = {}  # Temporal did not answer: the row stays, for a later round
        away: str | None = None  # once Temporal does not answer, the rest of the round waits too
        for row in rows:
            if away is not None:
                failed[row.id] = away
                continue
            try:
                outcome = await self._tell(row)
            except (RPCError, RuntimeError) as exc:
                failed[row.id] = f"{type(exc).__name__}: {exc}"
                if not isinstance(exc, RPCError) or exc.status in AWAY:
                    away = failed[row.id]
                continue
            if outcome == "started":
                started.append(row)
                done.append(row)
            elif outcome == "ended" or (outcome == "done" and row.kind == "stop"):
                ended.append(row)  # over, or told to stop: a stopped journey ends at once
            elif outcome == "done":
                done.append(row)
            # "wait": a stop or pause for a journey that is about to start stays for a later round
        if failed:
            log.warning("%d journey signal(s) wait for Temporal: %s", len(failed), next(iter(failed.values())))
        by_id = {r.id: r for r in rows}
        settlement = Settlement(
            done={r.id for r in done + ended},
            started={r.enrolment_id for r in started},
            ended=dict.fromkeys(r.enrolment_id for r in ended),
            failed={row_id: (by_id[row_id].attempts, error) for row_id, error in failed.items()},
        )
        if settle_later:
            leave(self.sessions, settlement)
        else:
            await asyncio.to_thread(self._settle, settlement)
        return RelayReport(
            delivered=[r.workflow_id for r in done], waiting=[r.workflow_id for r in rows if r.id in failed]
        )

    async def _tell(self, row: Outgoing) -> Told:
        """Starts or signals the journey: "started", "done", "ended" (it is over), or "wait" (try again)."""
        if row.ended:
            return "ended"
        if not row.started and row.kind == "event":
            if row.stopped or row.start is None:
                return "ended"  # stopped (or its version is gone) before its journey could start
            return await self._start(row)
        handle: WorkflowHandle = self.client.get_workflow_handle(row.workflow_id)
        try:
            if row.kind == "event":
                await handle.signal(JourneyWorkflow.event, self._event(row), rpc_timeout=RPC_TIMEOUT)
            else:
                await handle.signal(row.kind, Control(at=row.occurred_at, reason=row.reason), rpc_timeout=RPC_TIMEOUT)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            # Over, if it ever started; a stop or pause for a journey about to start waits for its start.
            return "ended" if row.started else "wait"
        return "done"

    async def _start(self, row: Outgoing) -> Told:
        start = row.start
        journey = JourneyInput(
            # The campaign is the journey's program; its samples are for `validate` and stay out of the payload.
            campaign=start.deployed.campaign.model_copy(update={"samples": Samples()}),
            version=start.deployed.version,
            bundle=start.deployed.content_hash,
            contact_id=start.contact_id,
            entry_key=start.entry_key,
            trigger_event_id=start.trigger_event_id,
            holdout=start.holdout,
            paused=start.paused,
            enrolment_id=start.enrolment_id,
            entered_at=start.entered_at,
            history_limit=self.history_limit,
            heard_first=list(start.heard_first),
        )
        campaign = journey.campaign
        try:
            await self.client.start_workflow(
                JourneyWorkflow.run,
                journey,
                id=row.workflow_id,
                task_queue=self.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                start_signal="event",
                start_signal_args=[self._event(row)],
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(sa.CAMPAIGN_ID, campaign.id),
                        SearchAttributePair(sa.CAMPAIGN_VERSION, str(journey.version)),
                        SearchAttributePair(sa.CONTACT_ID, journey.contact_id),
                        SearchAttributePair(sa.CAMPAIGN_STEP, campaign.steps[0].id),
                        SearchAttributePair(sa.CATEGORY, campaign.category),
                    ]
                ),
                static_summary=journey_summary(campaign.id, journey.contact_id, journey.version),
                static_details=(
                    f"{campaign.name} ({campaign.category}), version {journey.version}"
                    + (" — holdout: nothing is sent" if journey.holdout else "")
                ),
                rpc_timeout=RPC_TIMEOUT,
            )
        except WorkflowAlreadyStartedError:
            return "ended"  # it ran and finished already: a finished journey is never started again
        return "started"

    @staticmethod
    def _event(row: Outgoing) -> JourneyEvent:
        return JourneyEvent(name=row.event_name or "", event_id=row.signal_key, stage=row.stage,
                            occurred_at=row.occurred_at)  # fmt: skip
