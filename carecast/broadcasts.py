"""Starting and steering broadcasts by hand: `carecast broadcast start|pause|resume|cancel|status`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from carecast.campaign.model import Campaign
from carecast.filters.model import parse_filter
from carecast.filters.sql import to_sql
from carecast.store.campaigns import latest_version
from carecast.store.models import Contact
from workflows import search_attributes as sa
from workflows.broadcast import BroadcastWorkflow
from workflows.broadcast_contract import BroadcastInput, BroadcastState


class BroadcastError(Exception):
    pass


def deployed_broadcast(session: Session, campaign_id: str) -> tuple[Campaign, int]:
    row = latest_version(session, campaign_id)
    if row is None:
        raise BroadcastError(f"no deployed campaign {campaign_id!r}; run `carecast deploy` first")
    campaign = Campaign.model_validate(row.spec)
    if campaign.audience is None:
        raise BroadcastError(f"{campaign_id} is a journey, not a broadcast; journeys start from events")
    return campaign, row.version


def audience_size(session: Session, campaign: Campaign, now: datetime) -> int:
    """How many contacts the campaign's audience filter matches now (before the policy's skips)."""
    where = to_sql(parse_filter(campaign.audience), now)
    return session.scalar(select(func.count()).select_from(Contact).where(where))


async def start_broadcast(client: Client, task_queue: str, campaign: Campaign, version: int, label: str) -> str:
    workflow_id = f"broadcast/{campaign.id}/{label}"
    await client.start_workflow(
        BroadcastWorkflow.run,
        BroadcastInput(campaign.id, version),
        id=workflow_id,
        task_queue=task_queue,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(sa.CAMPAIGN_ID, campaign.id),
                SearchAttributePair(sa.CAMPAIGN_VERSION, str(version)),
                SearchAttributePair(sa.CATEGORY, campaign.category),
            ]
        ),
        static_summary=f"{campaign.id} broadcast · v{version} · started by hand",
    )
    return workflow_id


async def latest_run(client: Client, campaign_id: str) -> str:
    """The most recent broadcast run of a campaign that is still running, else the most recent one."""
    query = f"CampaignId = '{campaign_id}' AND WorkflowType = 'BroadcastWorkflow'"
    runs = [w async for w in client.list_workflows(query, limit=20)]
    if not runs:
        raise BroadcastError(f"no broadcast of {campaign_id} has run yet")
    running = [w for w in runs if w.status == WorkflowExecutionStatus.RUNNING]
    return max(running or runs, key=lambda w: w.start_time).id


async def progress(client: Client, workflow_id: str) -> BroadcastState:
    return await client.get_workflow_handle_for(BroadcastWorkflow.run, workflow_id).query(BroadcastWorkflow.progress)
