"""`carecast deploy`: store new campaign versions, keep Temporal Schedules in step.

Deploying the same folder twice changes nothing. A campaign whose content hash
is new gets the next version (old versions stay, running journeys keep theirs);
a campaign removed from the folder is deactivated and its schedule paused. A version is
a bundle: the campaign, its templates and its sender (carecast.campaign.bundle).
Each scheduled broadcast has one schedule, `broadcast/<campaign id>`, visible in
the Temporal UI's Schedules tab.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from carecast.campaign.bundle import build_bundle
from carecast.campaign.durations import format_duration
from carecast.campaign.house_rules import load_house_rules
from carecast.campaign.lifecycle import Lifecycle
from carecast.campaign.load import load_campaign
from carecast.campaign.model import Campaign
from carecast.config import Settings
from carecast.policy.model import EmailIdentity
from carecast.store.campaigns import Deployment, deploy_campaign
from carecast.store.models import CampaignVersion
from workflows.broadcast_contract import BROADCAST_WORKFLOW, BroadcastInput
from workflows.lifecycle_contract import LIFECYCLE_WORKFLOW, LifecycleInput

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
    session: Session,
    campaigns: list[Campaign],
    templates_dir: Path,
    house: EmailIdentity,
    remove_missing: bool = True,
) -> tuple[list[Change], dict[str, int], list[str]]:
    """Stores each campaign's bundle as a version; returns the changes, the active versions, the removed ids.

    With `remove_missing`, active campaigns absent from `campaigns` (the whole folder) are
    deactivated: their running journeys go on with their own version to their end.
    """
    changes, versions = [], {}
    for campaign in campaigns:
        deployment = deploy_campaign(session, campaign, build_bundle(campaign, templates_dir, house))
        versions[campaign.id] = deployment.version
        if deployment.changed:
            edited = deployment.templates_changed
            why = f" (templates changed: {', '.join(edited)})" if edited else ""
            changes.append(Change(campaign.id, f"deployed version {deployment.version}{why}"))
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


def deploy_files(session: Session, paths: list[Path], templates_dir: Path) -> list[Deployment]:
    """Deploys campaign files as they are, each with its bundle (the email identity of the policy.yaml beside it).

    What `deploy_versions` does for one or two files, without touching the other campaigns.
    """
    deployed = []
    for path in paths:
        campaign = load_campaign(path)
        house = load_house_rules(path.parent).email
        deployed.append(deploy_campaign(session, campaign, build_bundle(campaign, templates_dir, house)))
    return deployed


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
        # A contact-local run may still hold deferred messages when the next quarter hour fires for the next
        # zones: it must start all the same (Temporal's default, SKIP, would leave those zones out).
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.ALLOW_ALL if local else ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(note=f"{campaign.name} v{version} ({campaign.content_hash()[:12]})"),
    )


LIFECYCLE_SCHEDULE = "lifecycle/recompute"


async def _ensure(client: Client, schedule_id_: str, wanted: Schedule, label: str) -> list[Change]:
    """Creates the schedule, or updates it when its note (what it runs), overlap policy, task queue or paused state
    differ."""
    handle = client.get_schedule_handle(schedule_id_)
    try:
        current = await handle.describe()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        try:
            await client.create_schedule(schedule_id_, wanted)
        except ScheduleAlreadyRunningError:  # created by a concurrent deploy
            return []
        return [Change(label, f"schedule created: {wanted.state.note}")]
    same_policy = current.schedule.policy.overlap == wanted.policy.overlap
    # A schedule deployed before broadcasts had a task queue of their own moves to it.
    same_queue = getattr(current.schedule.action, "task_queue", None) == wanted.action.task_queue
    same = current.schedule.state.note == wanted.state.note and same_policy and same_queue
    if same and not current.schedule.state.paused:
        return []

    def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
        return ScheduleUpdate(schedule=wanted)

    await handle.update(replace)
    return [Change(label, f"schedule updated: {wanted.state.note}")]


async def _pause(client: Client, schedule_id_: str, label: str, note: str) -> list[Change]:
    handle = client.get_schedule_handle(schedule_id_)
    try:
        current = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return []
        raise
    if current.schedule.state.paused:
        return []
    await handle.pause(note=note)
    return [Change(label, "schedule paused")]


def lifecycle_schedule(lifecycle: Lifecycle, task_queue: str) -> Schedule:
    every = format_duration(lifecycle.recompute_every)
    return Schedule(
        action=ScheduleActionStartWorkflow(
            LIFECYCLE_WORKFLOW,
            LifecycleInput(),
            id="lifecycle/recompute/scheduled",
            task_queue=task_queue,
            static_summary=f"recompute lifecycle stages ({', '.join(lifecycle.names)})",
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=lifecycle.recompute_every)]),
        state=ScheduleState(note=f"every {every}: {', '.join(lifecycle.names)}"),
    )


async def sync_schedules(
    client: Client,
    campaigns: list[Campaign],
    versions: dict[str, int],
    removed: list[str],
    settings: Settings,
    lifecycle: Lifecycle | None = None,
) -> list[Change]:
    """Makes Temporal's schedules match the campaigns: lifecycle recomputes start on the journeys' task
    queue, scheduled broadcasts on the broadcasts' (`settings.task_queue`, `settings.broadcast_task_queue`)."""
    changes = []
    if lifecycle is not None:
        wanted = lifecycle_schedule(lifecycle, settings.task_queue)
        changes += await _ensure(client, LIFECYCLE_SCHEDULE, wanted, "lifecycle")
    else:
        changes += await _pause(client, LIFECYCLE_SCHEDULE, "lifecycle", "no campaigns/lifecycle.yaml")
    for campaign in campaigns:
        if campaign.schedule is not None:
            wanted = desired_schedule(campaign, versions[campaign.id], settings.broadcast_task_queue)
            changes += await _ensure(client, schedule_id(campaign.id), wanted, campaign.id)
    for campaign_id in removed:
        changes += await _pause(client, schedule_id(campaign_id), campaign_id, "campaign removed from the folder")
    return changes
