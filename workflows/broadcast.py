"""BroadcastWorkflow: one message to a whole audience, page by page.

It reads the audience by keyset (1,000 contacts a page by default), hands each page to
one activity that asks the policy and sends for every contact, and continues as
new every few pages carrying its cursor and counters, so its history stays
small however large the audience. Messages the policy deferred (quiet hours,
caps) are retried when they may go, until their hold expires. Signals pause,
resume and cancel it; the `progress` query and the details line in the UI show
how far it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from datetime import datetime, timedelta

from temporalio import workflow

# Data classes cross the sandbox as they are, so their datetime fields decode to real datetimes.
with workflow.unsafe.imports_passed_through():
    from workflows import broadcast_contract as contract
    from workflows import search_attributes as sa
    from workflows.broadcast_contract import (
        BROADCAST_WORKFLOW,
        BroadcastInput,
        BroadcastPageInput,
        BroadcastPageResult,
        BroadcastState,
        RetryDeferredInput,
        RetryDeferredResult,
    )

PAGE_TIMEOUT = timedelta(minutes=10)
# Finding where a page ends is one indexed query; a worker that dies during it is noticed soon.
PAGE_END_TIMEOUT = timedelta(seconds=30)
# Runs started after this change send several pages at once (BroadcastInput.parallel_pages).
PARALLEL_PAGES = "parallel-pages"
# Runs started after this change retry what waits a page of due messages at a time, hold while paused, and
# continue as new every `pages_per_run` passes.
RETRY_PASSES = "retry-passes"
# Pages heartbeat every 50 contacts; a worker that dies mid-page is noticed this quickly.
HEARTBEAT_TIMEOUT = timedelta(seconds=30)


@workflow.defn(name=BROADCAST_WORKFLOW)
class BroadcastWorkflow:
    def __init__(self) -> None:
        self._state = BroadcastState()

    @workflow.signal
    def pause(self) -> None:
        self._state.paused = True
        self._show()

    @workflow.signal
    def resume(self) -> None:
        self._state.paused = False
        self._show()

    @workflow.signal
    def cancel(self) -> None:
        self._state.cancelled = True
        self._show()

    @workflow.query
    def progress(self) -> BroadcastState:
        return self._state

    @workflow.run
    async def run(self, broadcast: BroadcastInput) -> BroadcastState:
        if broadcast.state is not None:  # continued as new: carry on, keeping signals this run already got
            early = self._state
            self._state = broadcast.state
            self._state.paused = self._state.paused or early.paused
            self._state.cancelled = self._state.cancelled or early.cancelled
        state = self._state
        # A late or catch-up fire of a schedule judges its audience (contacts' local times) when it was due.
        due = workflow.info().typed_search_attributes.get(sa.SCHEDULED_START)
        state.as_of = as_of = state.as_of or due or workflow.info().start_time
        run_id = workflow.info().workflow_id
        if state.total is None:
            state.total = await workflow.execute_activity(
                contract.count_audience,
                BroadcastPageInput(
                    broadcast.campaign_id, broadcast.version, run_id, as_of, None, 0, broadcast.local_time_cron
                ),
                start_to_close_timeout=PAGE_TIMEOUT,
                summary="count the audience",
            )
        if workflow.patched(PARALLEL_PAGES):
            await self._send_pages_in_parallel(broadcast, run_id, as_of)
        else:
            await self._send_pages_one_by_one(broadcast, run_id, as_of)
        await self._retry_deferred(broadcast, run_id, as_of)
        self._show(final=True)
        return state

    async def _send_pages_one_by_one(self, broadcast: BroadcastInput, run_id: str, as_of: datetime) -> None:
        """How runs started before PARALLEL_PAGES send; kept so their histories replay."""
        state = self._state
        pages_this_run = 0
        while not state.done_reading and not state.cancelled:
            await workflow.wait_condition(lambda: not state.paused or state.cancelled)
            if state.cancelled:
                break
            page: BroadcastPageResult = await workflow.execute_activity(
                contract.broadcast_page,
                BroadcastPageInput(
                    broadcast.campaign_id,
                    broadcast.version,
                    run_id,
                    as_of,
                    state.cursor,
                    broadcast.page_size,
                    broadcast.local_time_cron,
                    workflow.now(),
                ),  # fmt: skip
                start_to_close_timeout=PAGE_TIMEOUT,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                summary=f"send page {state.pages + 1}",
            )
            state.counters.add(page.counters)
            state.cursor = page.last_contact_id or state.cursor
            state.pages += 1
            state.done_reading = page.rows < broadcast.page_size
            self._show()
            pages_this_run += 1
            if not state.done_reading and pages_this_run >= broadcast.pages_per_run:
                workflow.continue_as_new(dataclasses.replace(broadcast, state=state))

    async def _send_pages_in_parallel(self, broadcast: BroadcastInput, run_id: str, as_of: datetime) -> None:
        """Finds where each page ends (a quick query), then sends up to `parallel_pages` pages at once."""
        state = self._state
        running: list[asyncio.Task] = []
        pages_this_run = 0
        while not state.done_reading and not state.cancelled:
            await workflow.wait_condition(lambda: not state.paused or state.cancelled)
            if state.cancelled:
                break
            upto = await workflow.execute_activity(
                contract.page_end,
                self._page_input(broadcast, run_id, as_of, state.cursor, None, broadcast.page_size),
                start_to_close_timeout=PAGE_END_TIMEOUT,
                summary=f"find where page {state.pages + len(running) + 1} ends",
            )
            # The last page takes whatever is left, however many that is by now.
            limit = broadcast.page_size if upto is not None else 0
            page = self._page_input(broadcast, run_id, as_of, state.cursor, upto, limit)
            running.append(asyncio.ensure_future(self._send_page(page, state.pages + len(running) + 1)))
            state.cursor, state.done_reading = upto, upto is None
            pages_this_run += 1
            if len(running) >= broadcast.parallel_pages:
                _, pending = await workflow.wait(running, return_when=asyncio.FIRST_COMPLETED)
                running = list(pending)
            if not state.done_reading and pages_this_run >= broadcast.pages_per_run:
                await asyncio.gather(*running)
                workflow.continue_as_new(dataclasses.replace(broadcast, state=state))
        await asyncio.gather(*running)

    @staticmethod
    def _page_input(broadcast, run_id, as_of, after, upto, limit) -> BroadcastPageInput:
        return BroadcastPageInput(
            broadcast.campaign_id, broadcast.version, run_id, as_of, after, limit, broadcast.local_time_cron,
            workflow.now(), upto,
        )  # fmt: skip

    async def _send_page(self, page: BroadcastPageInput, number: int) -> None:
        result: BroadcastPageResult = await workflow.execute_activity(
            contract.broadcast_page,
            page,
            start_to_close_timeout=PAGE_TIMEOUT,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            summary=f"send page {number}",
        )
        self._state.counters.add(result.counters)
        self._state.pages += 1
        self._show()

    async def _retry_deferred(self, broadcast: BroadcastInput, run_id: str, as_of: datetime) -> None:
        """Sends the messages that wait (deferred by the policy, refused for now by a provider) when they may go.

        A pass sends at most a page of those due; a paused run waits before the next pass, and
        the run continues as new every `pages_per_run` passes, so a long wait keeps a small history.
        """
        state = self._state
        passes = 0
        # Runs started before RETRY_PASSES retried while paused and never continued as new in this phase.
        paged = workflow.patched(RETRY_PASSES)
        while state.counters.deferred and not state.cancelled:
            if paged:
                await workflow.wait_condition(lambda: not state.paused or state.cancelled)
            if state.cancelled:
                break
            retried: RetryDeferredResult = await workflow.execute_activity(
                contract.retry_deferred,
                RetryDeferredInput(
                    broadcast.campaign_id, broadcast.version, run_id, as_of, workflow.now(), broadcast.page_size
                ),
                start_to_close_timeout=PAGE_TIMEOUT,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                summary="send the waiting messages that may go now",
            )
            state.counters.add(retried.counters)
            if retried.waiting is not None:
                state.counters.deferred = retried.waiting
            self._show()
            passes += 1
            if retried.next_at is None:
                break
            if paged and passes >= broadcast.pages_per_run:
                workflow.continue_as_new(dataclasses.replace(broadcast, state=state))
            if retried.more:
                continue
            wait = max(retried.next_at - workflow.now(), timedelta(seconds=1))
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: state.cancelled,
                    timeout=wait,
                    timeout_summary=f"{state.counters.deferred} messages wait for their time",
                )

    def _show(self, final: bool = False) -> None:
        state = self._state
        read = min(state.counters.audience, state.total or 0)
        status = "cancelled" if state.cancelled else "paused" if state.paused else "done" if final else "sending"
        workflow.set_current_details(f"{status}: {read}/{state.total} contacts · {state.counters.summary()}")
