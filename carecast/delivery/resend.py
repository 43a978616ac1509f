"""`carecast deliveries resend ID`: an operator sends a transactional or care message again.

For a message left `uncertain` (it may be out) or `failed` that the operator, having
looked, wants to go. It is sent by a `Resend` workflow on the workers (their provider
keys, Temporal's retries), as the step it came from would send it: the same template
from the same deployed version, the same channels, the triggering event's data. The
policy is asked again. Marketing is never sent again by hand: a duplicate offer is
worse than a missing one.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session
from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from carecast.campaign.steps import Send
from carecast.store.campaigns import stored_version
from carecast.store.models import Delivery, Enrolment
from workflows import search_attributes as sa
from workflows.journey.contract import DeliverInput
from workflows.resend import ResendWorkflow

RESENDABLE_CATEGORIES = ("transactional", "care")
RESENDABLE_STATUSES = ("uncertain", "failed")
BROADCAST_STEP = "send"  # the step id every broadcast delivery has


class ResendError(Exception):
    pass


def resend_request(session: Session, delivery_id: int, now: datetime) -> DeliverInput:
    """What the Resend workflow delivers for this delivery; a ResendError says why it may not be resent."""
    row = session.get(Delivery, delivery_id)
    if row is None:
        raise ResendError(f"no delivery {delivery_id}; `carecast deliveries list` shows those that need a human")
    if row.category not in RESENDABLE_CATEGORIES:
        raise ResendError(f"delivery {delivery_id} is {row.category}: only transactional and care messages are resent")
    if row.status not in RESENDABLE_STATUSES:
        raise ResendError(f"delivery {delivery_id} is {row.status}: only uncertain or failed messages are resent")
    if row.retry_at is not None:
        when = f"{row.retry_at:%Y-%m-%d %H:%M}Z"
        raise ResendError(f"delivery {delivery_id} is to be sent again automatically at {when}; look again after that")
    deployed = stored_version(session, row.campaign_id, row.campaign_version)
    if deployed is None:
        raise ResendError(f"{row.campaign_id} v{row.campaign_version} is no longer stored")
    campaign = deployed.campaign
    send = next((s.send for s in campaign.steps or () if isinstance(s, Send) and s.id == row.step_id), None)
    if send is None and row.step_id == BROADCAST_STEP:
        send = campaign.send
    if send is None:
        raise ResendError(f"{row.campaign_id} v{row.campaign_version} has no send step {row.step_id!r}")
    trigger = session.scalar(select(Enrolment.trigger_event_id).where(Enrolment.workflow_id == row.workflow_id))
    return DeliverInput(
        workflow_id=resend_workflow_id(delivery_id), campaign_id=campaign.id, campaign_name=campaign.name,
        campaign_version=row.campaign_version, category=row.category, step_id=row.step_id, template=send.template,
        channels=send.channel_list(), contact_id=row.contact_id, trigger_event_id=trigger, topic=campaign.topic,
        urgent=send.urgent, on_cap=send.on_cap, held_since=now, max_hold_seconds=int(send.max_hold.total_seconds()),
        sender=campaign.sender.from_ if campaign.sender else None,
        reply_to=campaign.sender.reply_to if campaign.sender else None, bundle=deployed.content_hash,
    )  # fmt: skip


def resend_workflow_id(delivery_id: int) -> str:
    return f"resend/{delivery_id}"


async def start_resend(client: Client, task_queue: str, request: DeliverInput) -> tuple[WorkflowHandle, bool]:
    """The Resend workflow's handle, and whether this call started it (False: it was resent before)."""
    handle = client.get_workflow_handle_for(ResendWorkflow.run, request.workflow_id)
    try:
        await client.start_workflow(
            ResendWorkflow.run,
            request,
            id=request.workflow_id,
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(sa.CAMPAIGN_ID, request.campaign_id),
                    SearchAttributePair(sa.CAMPAIGN_VERSION, str(request.campaign_version)),
                    SearchAttributePair(sa.CATEGORY, request.category),
                ]
            ),
            static_summary=f"{request.campaign_id} · {request.step_id} sent again by an operator",
        )
    except WorkflowAlreadyStartedError:
        return handle, False
    return handle, True
