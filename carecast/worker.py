"""The carecast worker: every workflow and activity on one task queue, and the outbox relay.

Run as many as needed (`carecast worker` or `python worker.py`); nothing here
assumes it is the only one. Each runs the relay that starts and signals journeys
from the outbox (carecast/intake/relay.py) whatever wrote to it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

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

ACTIVITY_THREADS = 16


@asynccontextmanager
async def carecast_worker(
    client: Client,
    settings: Settings,
    engine: Engine,
    provider: Provider,
    clock: Clock = utcnow,
    observe: Callable[[DeliverInput, Outcome], None] | None = None,
) -> AsyncIterator[Worker]:
    """A configured worker, the thread pool its activities run in, and the outbox relay, closed together.

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
    relay, stopping = Relay(client, sessions, settings.task_queue), asyncio.Event()
    relaying = asyncio.create_task(relay.run(stopping), name="carecast outbox relay")
    try:
        with ThreadPoolExecutor(max_workers=ACTIVITY_THREADS, thread_name_prefix="activity") as executor:
            yield Worker(
                client,
                task_queue=settings.task_queue,
                # JourneyWorkflowV1 runs only the journeys started before the `Journey` type, to their end.
                workflows=[JourneyWorkflow, JourneyWorkflowV1, BroadcastWorkflow, LifecycleWorkflow, ResendWorkflow],
                activities=[
                    delivery.deliver,
                    steps.next_local_time,
                    steps.match_case,
                    steps.update_contact,
                    steps.journey_ended,
                    broadcasts.count_audience,
                    broadcasts.page_end,
                    broadcasts.broadcast_page,
                    broadcasts.retry_deferred,
                    lifecycle.recompute_stages,
                ],
                activity_executor=executor,
                max_concurrent_activities=ACTIVITY_THREADS,
                # Eager execution would hand every activity to the worker running its workflow, so a
                # broadcast's pages would all land on one process however many workers there are.
                disable_eager_activity_execution=True,
            )
    finally:
        stopping.set()
        await relaying
