"""ResendWorkflow: one message an operator decided to send again (`carecast deliveries resend ID`).

It goes through the same deliver activity as any step, under its own idempotency key
(`resend/<delivery id>/...`), so the policy is asked again — consent, suppressions,
quiet hours — and running the command twice sends it once. A deferral (quiet hours
for a care message) waits on a durable timer, as a journey's send does.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.journey import contract
    from workflows.journey.contract import DeliverInput, DeliverResult
    from workflows.journey.handlers import SEND_RETRY

RESEND_WORKFLOW = "Resend"


@workflow.defn(name=RESEND_WORKFLOW)
class ResendWorkflow:
    @workflow.run
    async def run(self, request: DeliverInput) -> DeliverResult:
        while True:
            result: DeliverResult = await workflow.execute_activity(
                contract.deliver,
                dataclasses.replace(request, asked_at=workflow.now()),
                start_to_close_timeout=contract.DELIVER_TIMEOUT,
                retry_policy=SEND_RETRY,
                summary=f"send {request.template} again by {' or '.join(request.channels)}",
            )
            if result.status != "deferred" or result.deferred_until is None:
                return result
            await workflow.sleep(
                max(result.deferred_until - workflow.now(), timedelta(seconds=1)),
                summary=f"{(result.reason or 'deferred').replace('_', ' ')} until {result.deferred_until_local}",
            )
