"""`carecast deploy`: store new campaign versions, keep Temporal Schedules in step.

Deploying the same folder twice changes nothing. A campaign whose content hash
is new gets the next version (old versions stay, running journeys keep theirs);
a campaign removed from the folder is deactivated and its schedule paused.
Each scheduled broadcast has one schedule, `broadcast/<campaign id>`, visible in
the Temporal UI's Schedules tab.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from carecast.spec.campaign import Campaign
from carecast.store.campaigns import deploy_campaign
from carecast.store.models import CampaignVersion
from workflows.broadcast_contract import BROADCAST_WORKFLOW, BroadcastInput

# `timezone: contact` schedules fire every quarter hour (zones differ by 15, 30, 45 minutes);
# each run sends to the contacts whose local time matches the campaign's cron.
CONTACT_LOCAL_CRON = "*/15 * * * *"


@dataclass(frozen=True)
class Change:
    campaign_id: str
    what: str

    def __str__(self) -> str:
        return f"{self.campaign_id:<22} {self.what}"


def schedule_id(campaign_id: str) -> str:
    return f"broadcast/{campaign_id}"


def deploy_versions(
    session: Session, campaigns: list[Campaign], remove_missing: bool = True
) -> tuple[list[Change], dict[str, int], list[str]]:
    """Stores versions; returns the changes, the active version per campaign, and the removed ids.

    With `remove_missing`, active campaigns absent from `campaigns` (the whole folder) are deactivated.
    """
    changes, versions = [], {}
    for campaign in campaigns:
        deployment = deploy_campaign(session, campaign)
        versions[campaign.id] = deployment.version
        if deployment.changed:
            changes.append(Change(campaign.id, f"deployed version {deployment.version}"))
    if not remove_missing:
        return changes, versions, []
    present = {c.id for c in campaigns}
    removed = sorted(
        {
            row.campaign_id
            for row in session.scalars(select(CampaignVersion).where(CampaignVersion.active.is_(True)))
            if row.campaign_id not in present
        }
    )
    for row in session.scalars(select(CampaignVersion).where(CampaignVersion.campaign_id.in_(removed))):
        row.active = False
    changes += [Change(campaign_id, "removed from the folder: deactivated") for campaign_id in removed]
    return changes, versions, removed


def desired_schedule(campaign: Campaign, version: int, task_queue: str) -> Schedule:
    schedule = campaign.schedule
    local = schedule.timezone == "contact"
    spec = (
        ScheduleSpec(cron_expressions=[CONTACT_LOCAL_CRON])
        if local
        else ScheduleSpec(cron_expressions=[schedule.cron], time_zone_name=schedule.timezone)
    )
    when = f"{schedule.cron} in each contact's zone" if local else f"{schedule.cron} {schedule.timezone}"
    return Schedule(
        action=ScheduleActionStartWorkflow(
            BROADCAST_WORKFLOW,
            BroadcastInput(campaign.id, version, schedule.cron if local else None),
            id=f"broadcast/{campaign.id}/scheduled",
            task_queue=task_queue,
            static_summary=f"{campaign.id} broadcast · v{version} · {when}",
        ),
        spec=spec,
        state=ScheduleState(note=f"{campaign.name} v{version} ({campaign.content_hash()[:12]})"),
    )


async def sync_schedules(
    client: Client, campaigns: list[Campaign], versions: dict[str, int], removed: list[str], task_queue: str
) -> list[Change]:
    changes = []
    for campaign in campaigns:
        if campaign.schedule is None:
            continue
        wanted = desired_schedule(campaign, versions[campaign.id], task_queue)
        handle = client.get_schedule_handle(schedule_id(campaign.id))
        try:
            current = await handle.describe()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            try:
                await client.create_schedule(schedule_id(campaign.id), wanted)
            except ScheduleAlreadyRunningError:  # created by a concurrent deploy
                continue
            changes.append(Change(campaign.id, f"schedule created: {wanted.state.note}"))
            continue
        if current.schedule.state.note != wanted.state.note or current.schedule.state.paused:

            def replace(_: ScheduleUpdateInput, schedule: Schedule = wanted) -> ScheduleUpdate:
                return ScheduleUpdate(schedule=schedule)

            await handle.update(replace)
            changes.append(Change(campaign.id, f"schedule updated: {wanted.state.note}"))
    for campaign_id in removed:
        handle = client.get_schedule_handle(schedule_id(campaign_id))
        try:
            current = await handle.describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                continue
            raise
        if not current.schedule.state.paused:
            await handle.pause(note="campaign removed from the folder")
            changes.append(Change(campaign_id, "schedule paused"))
    return changes
