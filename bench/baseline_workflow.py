"""The workflow of bench/baseline.py: woken by its first signal, it runs one activity and ends."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

SEND_ACTIVITY = "baseline_send"


@workflow.defn(name="BaselineWorkflow")
class BaselineWorkflow:
    def __init__(self) -> None:
        self.events: list[dict] = []

    @workflow.signal
    def event(self, event: dict) -> None:
        self.events.append(event)

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: bool(self.events))
        await workflow.execute_activity(SEND_ACTIVITY, self.events[0], start_to_close_timeout=timedelta(minutes=1))
