"""Reading the campaign folder into models."""

from __future__ import annotations

from pathlib import Path

from carecast.spec.campaign import Campaign
from carecast.spec.documents import SpecError, load_model

# House files that live beside campaigns but are not campaigns.
NOT_CAMPAIGNS = {"policy.yaml", "lifecycle.yaml"}


def load_campaign(path: Path) -> Campaign:
    campaign = load_model(path, Campaign)
    if campaign.id != path.stem:
        raise SpecError(f"{path}: id {campaign.id!r} must match the file name {path.stem!r}")
    return campaign


def campaign_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.yaml") if p.name not in NOT_CAMPAIGNS)


def load_campaigns(directory: Path) -> list[Campaign]:
    """Every campaign in `directory`; the first broken file stops the load."""
    return [load_campaign(path) for path in campaign_files(directory)]
