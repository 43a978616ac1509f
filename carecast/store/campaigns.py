"""Deployed campaign versions: stored once per content, newest active version wins."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from carecast.campaign.model import Campaign
from carecast.store.models import CampaignVersion


@dataclass(frozen=True)
class Deployment:
    campaign_id: str
    version: int
    changed: bool


def deploy_campaign(session: Session, campaign: Campaign) -> Deployment:
    """Stores a new version when the content changed; the same content deploys to nothing."""
    content_hash = campaign.content_hash()
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
        )
        session.add(version)
    for other in session.scalars(select(CampaignVersion).where(CampaignVersion.campaign_id == campaign.id)):
        other.active = other is version
    version.active = True
    session.flush()
    return Deployment(campaign.id, version.version, changed=True)


def latest_version(session: Session, campaign_id: str) -> CampaignVersion | None:
    return session.scalar(
        select(CampaignVersion)
        .where(CampaignVersion.campaign_id == campaign_id, CampaignVersion.active.is_(True))
        .order_by(CampaignVersion.version.desc())
        .limit(1)
    )
