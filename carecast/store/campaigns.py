"""Deployed campaign versions: stored once per content, newest active version wins."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from carecast.campaign.bundle import Bundle
from carecast.campaign.model import Campaign
from carecast.store.models import CampaignControl, CampaignVersion

# An operator's hold on a campaign (campaign_controls); no row means running.
RUNNING, PAUSED, STOPPED = "running", "paused", "stopped"


def campaign_states(session: Session, campaign_ids: Iterable[str]) -> dict[str, str]:
    """The state of each campaign that has one; the others are running."""
    ids = sorted(set(campaign_ids))
    if not ids:
        return {}
    rows = session.execute(
        select(CampaignControl.campaign_id, CampaignControl.state).where(CampaignControl.campaign_id.in_(ids))
    )
    return dict(rows.all())


class RecentStates:
    """Every campaign's state as read at most `seconds` ago: one small query a second for all sends of a worker.

    A hold is checked again in the store before it holds a message, so a campaign just
    resumed or started sends at once. A hold given this second may let a message out
    for up to `seconds` where the journey has not heard its pause or stop yet: the
    store is the backstop under the signals, which hold journeys at once.
    """

    def __init__(self, seconds: float = 1.0) -> None:
        self.seconds = seconds
        self._read_at = float("-inf")
        self._states: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, session: Session, campaign_id: str) -> str:
        with self._lock:
            if time.monotonic() - self._read_at > self.seconds:
                self._states = dict(session.execute(select(CampaignControl.campaign_id, CampaignControl.state)).all())
                self._read_at = time.monotonic()
            state = self._states.get(campaign_id, RUNNING)
            if state != RUNNING:  # a hold may have been lifted this very second: the store says, not the memory
                state = (
                    session.scalar(select(CampaignControl.state).where(CampaignControl.campaign_id == campaign_id))
                    or RUNNING
                )
                self._states[campaign_id] = state
            return state


@dataclass(frozen=True)
class DeployedVersion:
    campaign: Campaign
    version: int
    content_hash: str  # the bundle's: what a journey or broadcast of this version renders from
    state: str = RUNNING  # the operator's hold on the campaign, read with the version


class _ParsedSpecs:
    """Stored specs parsed once per content hash: a version's content never changes."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self.by_hash: dict[str, Campaign] = {}

    def get(self, session: Session, campaign_id: str, content_hash: str) -> Campaign:
        campaign = self.by_hash.get(content_hash)
        if campaign is None:
            spec = session.scalar(
                select(CampaignVersion.spec).where(
                    CampaignVersion.campaign_id == campaign_id, CampaignVersion.content_hash == content_hash
                )
            )
            campaign = Campaign.model_validate(spec)
            if len(self.by_hash) >= self.size:
                self.by_hash.pop(next(iter(self.by_hash)))
            self.by_hash[content_hash] = campaign
        return campaign


_specs = _ParsedSpecs()


ACTIVE_VERSIONS = (
    select(CampaignVersion.campaign_id, CampaignVersion.content_hash, CampaignVersion.version, CampaignControl.state)
    .outerjoin(CampaignControl, CampaignControl.campaign_id == CampaignVersion.campaign_id)
    .where(CampaignVersion.active.is_(True))
)


def active_versions(session: Session) -> list[DeployedVersion]:
    """The active version of every deployed campaign, with its state; each spec is parsed once per process."""
    return [
        DeployedVersion(_specs.get(session, cid, content_hash), version, content_hash, state or RUNNING)
        for cid, content_hash, version, state in session.execute(ACTIVE_VERSIONS)
    ]


def stored_version(session: Session, campaign_id: str, version: int) -> DeployedVersion | None:
    """A version as deployed, active or not (running journeys keep theirs)."""
    content_hash = session.scalar(
        select(CampaignVersion.content_hash).where(
            CampaignVersion.campaign_id == campaign_id, CampaignVersion.version == version
        )
    )
    if content_hash is None:
        return None
    return DeployedVersion(_specs.get(session, campaign_id, content_hash), version, content_hash)


@dataclass(frozen=True)
class Deployment:
    campaign_id: str
    version: int
    changed: bool
    templates_changed: list[str] = field(default_factory=list)


def deploy_campaign(session: Session, campaign: Campaign, bundle: Bundle) -> Deployment:
    """Stores a new version when the bundle changed; the same bundle deploys to nothing."""
    content_hash = bundle.content_hash(campaign)
    current = latest_version(session, campaign.id)
    if current is not None and current.content_hash == content_hash and current.active:
        return Deployment(campaign.id, current.version, changed=False)
    same_content = session.scalar(
        select(CampaignVersion).where(
            CampaignVersion.campaign_id == campaign.id, CampaignVersion.content_hash == content_hash
        )
    )
    if same_content is not None:
        # Reverting to an earlier content: that version becomes the newest again.
        version = same_content
    else:
        highest = session.scalar(
            select(func.max(CampaignVersion.version)).where(CampaignVersion.campaign_id == campaign.id)
        )
        version = CampaignVersion(
            campaign_id=campaign.id,
            version=(highest or 0) + 1,
            content_hash=content_hash,
            spec=campaign.model_dump(mode="json"),
            templates=bundle.templates,
            identity=asdict(bundle.identity),
        )
        session.add(version)
    for other in session.scalars(select(CampaignVersion).where(CampaignVersion.campaign_id == campaign.id)):
        other.active = other is version
    version.active = True
    session.flush()
    return Deployment(campaign.id, version.version, changed=True, templates_changed=_changed_files(current, bundle))


def _changed_files(current: CampaignVersion | None, bundle: Bundle) -> list[str]:
    """The template files that differ from the version that was active (none for the first)."""
    if current is None or current.templates is None:
        return []
    before = current.templates
    return sorted(
        name for name in before.keys() | bundle.templates.keys() if before.get(name) != bundle.templates.get(name)
    )


def latest_version(session: Session, campaign_id: str) -> CampaignVersion | None:
    return session.scalar(
        select(CampaignVersion)
        .where(CampaignVersion.campaign_id == campaign_id, CampaignVersion.active.is_(True))
        .order_by(CampaignVersion.version.desc())
        .limit(1)
    )
