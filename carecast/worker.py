"""The carecast worker: journeys and broadcasts, each on a task queue of its own, and the outbox relay.

Run as many as needed (`carecast worker` or `python worker.py`); nothing here
assumes it is the only one. A worker serves both queues unless told which
(`carecast worker --queues journeys`): journeys (with the operator's resends and
lifecycle recomputes) on `task_queue`, broadcasts and their pages on
`broadcast_task_queue`, so a 100,000-contact broadcast never fills the activity
slots a confirmation needs. Each journeys worker runs the relay that starts and
signals journeys from the outbox (carecast/intake/relay.py) whatever wrote to it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager

from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.worker import Worker

from activities.broadcast import BroadcastActivities
from activities.deliver import DeliveryActivities
from activities.journey_steps import JourneyStepActivities
from activities.lifecycle import LifecycleActivities
from carecast.campaign.house_rules import load_house_rules
from carecast.campaign.lifecycle import load_lifecycle
from carecast.channels.base import Provider
from carecast.clock import Clock
from carecast.config import Settings
from carecast.delivery.claim import Outcome
from carecast.intake.relay import Relay
from carecast.metrics import observe_outcome
from carecast.render.templates import TemplateRenderer
from carecast.store.db import make_sessionmaker
from carecast.store.house_rules import DeployedHouseRules
from carecast.store.models import utcnow
from workflows.broadcast import BroadcastWorkflow
from workflows.journey.contract import DeliverInput
from workflows.journey.workflow import JourneyWorkflow
from workflows.legacy.journey_v1 import JourneyWorkflowV1
from workflows.lifecycle import LifecycleWorkflow
from workflows.resend import ResendWorkflow

ACTIVITY_THREADS = 16  # per task queue served
ROLES = ("journeys", "broadcasts")


class QueuesError(ValueError):
    """`carecast worker --queues` names something other than journeys and broadcasts."""


def parse_roles(text: str) -> tuple[str, ...]:
    """The roles of `--queues journeys,broadcasts`, checked, in a fixed order."""
    named = {part.strip() for part in text.split(",") if part.strip()}
    unknown = sorted(named - set(ROLES))
    if unknown or not named:
        raise QueuesError(f"--queues {text!r}: name one or both of {', '.join(ROLES)}, separated by a comma")
    return tuple(role for role in ROLES if role in named)


class Workers:
    """The Temporal workers of one process, one per task queue it serves, run and shut down together."""

    def __init__(self, workers: dict[str, Worker]) -> None:
        self.by_queue = workers

    async def run(self) -> None:
        """Runs until `shutdown`; one worker failing shuts the others down and raises its error."""
        try:
            await asyncio.gather(*(worker.run() for worker in self.by_queue.values()))
        finally:
            await self.shutdown()

    async def shutdown(self) -> None:
        await asyncio.gather(*(worker.shutdown() for worker in self.by_queue.values()))

    async def __aenter__(self) -> Workers:
        async with AsyncExitStack() as stack:
            for worker in self.by_queue.values():
                await stack.enter_async_context(worker)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, *exc) -> None:
        await self._stack.__aexit__(*exc)


@asynccontextmanager
async def carecast_worker(
    client: Client,
    settings: Settings,
    engine: Engine,
    provider: Provider,
    clock: Clock = utcnow,
    observe: Callable[[DeliverInput, Outcome], None] | None = None,
    roles: Collection[str] = ROLES,
) -> AsyncIterator[Workers]:
    """Configured workers for `roles`, the thread pool their activities run in, and the outbox relay, closed together.

    `clock` and `observe` are for `carecast simulate`: its simulated time, and what each message came to
    (by default each outcome is counted in this process's metrics).
    """
    sessions = make_sessionmaker(engine)
    observe = observe or observe_outcome
    # The rules as last deployed (this folder's until a deploy stores them): limits are never frozen.
    house_rules = DeployedHouseRules(sessions, fallback=load_house_rules(settings.campaigns_dir))
    delivery = DeliveryActivities(
        sessions,
        TemplateRenderer(settings.templates_dir),
        provider,
        house_rules,
        settings.link_signer(),
        clock,
        observe,
    )
    steps = JourneyStepActivities(sessions, house_rules, lambda: client, settings.task_queue, clock)
    broadcasts = BroadcastActivities(sessions, delivery, house_rules)
    lifecycle = LifecycleActivities(
        sessions, load_lifecycle(settings.campaigns_dir), lambda: client, settings.task_queue, clock
    )
    broadcast_workflows = [BroadcastWorkflow]
    broadcast_activities = [
        broadcasts.count_audience,
        broadcasts.page_end,
        broadcasts.broadcast_page,
        broadcasts.retry_deferred,
    ]
    served = {}  # task queue: (workflows, activities, whether its activities may run eagerly)
    if "journeys" in roles:
        served[settings.task_queue] = (
            # JourneyWorkflowV1 runs only the journeys started before the `Journey` type, to their end; and
            # broadcasts started here before they had a queue of their own (or by a schedule deployed before
            # then) finish here too.
            [JourneyWorkflow, JourneyWorkflowV1, LifecycleWorkflow, ResendWorkflow, *broadcast_workflows],
            [
                delivery.deliver,
                steps.next_local_time,
                steps.match_case,
                steps.update_contact,
                steps.journey_ended,
                lifecycle.recompute_stages,
                *broadcast_activities,
            ],
            # A journey's activity runs on the worker that ran its workflow task: no second trip through
            # the queue before a confirmation goes out.
            True,
        )
    if "broadcasts" in roles:
        # Eager execution would hand every page to the worker running the broadcast, however many there are.
        served[settings.broadcast_task_queue] = (broadcast_workflows, broadcast_activities, False)
    relay, stopping = Relay(client, sessions, settings.task_queue), asyncio.Event()
    relaying = asyncio.create_task(relay.run(stopping), name="carecast outbox relay") if "journeys" in roles else None
    try:
        threads = ACTIVITY_THREADS * len(served)
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="activity") as executor:
            yield Workers(
                {
                    queue: Worker(
                        client,
                        task_queue=queue,
                        workflows=workflows,
                        activities=activities,
                        activity_executor=executor,
                        max_concurrent_activities=ACTIVITY_THREADS,
                        disable_eager_activity_execution=not eager,
                    )
                    for queue, (workflows, activities, eager) in served.items()
                }
            )
    finally:
        stopping.set()
        if relaying is not None:
            await relaying
