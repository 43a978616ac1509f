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

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from carecast.store.campaigns import stored_version
from carecast.store.models import CampaignControl, Enrolment, JourneySignal, utcnow
from workflows import search_attributes as sa
from workflows.journey.contract import HISTORY_LIMIT, JourneyEvent, JourneyInput, journey_summary
from workflows.journey.workflow import JourneyWorkflow

log = logging.getLogger("carecast.relay")

# Rows written are delivered by their writer at once; the relay leaves them alone this long.
FAST_PATH_LEASE = timedelta(seconds=15)
# A row the relay took is its own for this long; another relay takes it after that.
CLAIM_LEASE = timedelta(seconds=60)
ROWS_PER_ROUND = 200
RELAY_EVERY_SECONDS = 1.0


@dataclass(frozen=True)
class _Row:
    id: int
    workflow_id: str
    kind: str  # event, stop, pause, resume
    signal_key: str
    event_name: str | None
    stage: str | None
    attempts: int
    started: bool
    ended: bool
    start: JourneyInput | None  # for a journey not started yet: what to start it with
    stopped: bool  # its campaign is stopped: a journey not started yet is not started at all


@dataclass
class RelayReport:
    delivered: list[str]  # workflow ids told (or started)
    started: list[str]  # the journeys among them that this delivery started
    waiting: list[str]  # workflow ids whose rows wait for Temporal


async def relay_now(
    temporal: Callable[[], Awaitable[Client]], sessions: sessionmaker[Session], task_queue: str, signals: list[int]
) -> RelayReport | None:
    """A writer's fast path for the rows it wrote; None when Temporal does not answer (the loop delivers them)."""
    if not signals:
        return RelayReport([], [], [])
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
        """Delivers these rows now (their writer's fast path); what Temporal does not take waits for the loop."""
        if not ids:
            return RelayReport([], [], [])
        rows = await asyncio.to_thread(self._load, ids)
        return await self._deliver(rows)

    async def run(self, stopping: asyncio.Event) -> None:
        """Delivers due rows every second until `stopping` is set; errors are logged, never fatal."""
        while not stopping.is_set():
            try:
                ids = await asyncio.to_thread(self._claim_due)
                if ids:
                    await self.send(ids)
            except Exception:  # the store or Temporal is away: try again next round
                log.exception("relay round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), RELAY_EVERY_SECONDS)

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

    def _load(self, ids: list[int]) -> list[_Row]:
        with self.sessions() as session:
            found = session.execute(
                select(JourneySignal, Enrolment)
                .join(Enrolment, Enrolment.id == JourneySignal.enrolment_id)
                .where(JourneySignal.id.in_(ids))
                .order_by(JourneySignal.id)
            ).all()
            states = dict(
                session.execute(
                    select(CampaignControl.campaign_id, CampaignControl.state).where(
                        CampaignControl.campaign_id.in_({e.campaign_id for _, e in found})
                    )
                ).all()
            )
            return [
                _Row(
                    id=signal.id,
                    workflow_id=signal.workflow_id,
                    kind=signal.kind,
                    signal_key=signal.signal_key,
                    event_name=signal.event_name,
                    stage=signal.stage,
                    attempts=signal.attempts,
                    started=enrolment.started_at is not None,
                    ended=enrolment.ended_at is not None,
                    start=self._start_input(session, enrolment, states.get(enrolment.campaign_id)),
                    stopped=states.get(enrolment.campaign_id) == "stopped",
                )  # fmt: skip
                for signal, enrolment in found
            ]

    def _start_input(self, session: Session, enrolment: Enrolment, state: str | None) -> JourneyInput | None:
        if enrolment.started_at is not None or enrolment.ended_at is not None:
            return None
        deployed = stored_version(session, enrolment.campaign_id, enrolment.campaign_version)
        if deployed is None:
            return None
        return JourneyInput(
            campaign=deployed.campaign,
            version=deployed.version,
            bundle=deployed.content_hash,
            contact_id=enrolment.contact_id,
            entry_key=enrolment.entry_key,
            trigger_event_id=enrolment.trigger_event_id,
            holdout=enrolment.holdout,
            paused=state == "paused",
            history_limit=self.history_limit,
        )

    def _settle(self, done: list[_Row], started: list[_Row], ended: list[_Row], failed: dict[int, str],
                rows: list[_Row]) -> None:  # fmt: skip
        now = utcnow()
        by_id = {r.id: r for r in rows}
        with self.sessions.begin() as session:
            finished = [r.id for r in done + ended]
            if finished:
                session.execute(delete(JourneySignal).where(JourneySignal.id.in_(finished)))
            for ids, values in (
                ({r.workflow_id for r in started}, {"started_at": now}),
                ({r.workflow_id for r in ended}, {"ended_at": now}),
            ):
                if ids:
                    session.execute(
                        update(Enrolment).where(Enrolment.workflow_id.in_(ids), Enrolment.ended_at.is_(None))
                        .values(**values)
                    )  # fmt: skip
            for row_id, error in failed.items():
                attempts = by_id[row_id].attempts + 1
                session.execute(
                    update(JourneySignal)
                    .where(JourneySignal.id == row_id)
                    .values(attempts=attempts, last_error=error[:2000],
                            next_attempt_at=now + timedelta(seconds=min(60, 2**attempts)))
                )  # fmt: skip

    # The Temporal side.

    async def _deliver(self, rows: list[_Row]) -> RelayReport:
        done: list[_Row] = []  # told: the row goes
        started: list[_Row] = []  # told by starting the journey: the row goes, the enrolment is started
        ended: list[_Row] = []  # the journey is over: the row goes, the enrolment is ended
        failed: dict[int, str] = {}  # Temporal did not answer: the row stays, for a later round
        for row in rows:
            try:
                outcome = await self._tell(row)
            except (RPCError, RuntimeError) as exc:
                failed[row.id] = f"{type(exc).__name__}: {exc}"
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
        await asyncio.to_thread(self._settle, done, started, ended, failed, rows)
        return RelayReport(
            delivered=[r.workflow_id for r in done],
            started=[r.workflow_id for r in started],
            waiting=[r.workflow_id for r in rows if r.id in failed],
        )

    async def _tell(self, row: _Row) -> str:
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
                await handle.signal(JourneyWorkflow.event, self._event(row))
            else:
                await handle.signal(row.kind)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            # Over, if it ever started; a stop or pause for a journey about to start waits for its start.
            return "ended" if row.started else "wait"
        return "done"

    async def _start(self, row: _Row) -> str:
        journey = row.start
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
                    f"{campaign.name} ({campaign.category}), version {journey.version}, entered on event "
                    f"{journey.trigger_event_id}" + (" — holdout: nothing is sent" if journey.holdout else "")
                ),
            )
        except WorkflowAlreadyStartedError:
            return "ended"  # it ran and finished already: a finished journey is never started again
        return "started"

    @staticmethod
    def _event(row: _Row) -> JourneyEvent:
        return JourneyEvent(name=row.event_name or "", event_id=row.signal_key, stage=row.stage)
