"""Reading campaign files into models, with errors that name the file and the field."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from carecast.spec.campaign import Campaign

# House files that live beside campaigns but are not campaigns.
NOT_CAMPAIGNS = {"policy.yaml", "lifecycle.yaml"}


class CampaignFileError(Exception):
    """A campaign file cannot be used; the message says where and why."""


def load_campaign(path: Path) -> Campaign:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise CampaignFileError(f"{where}: {problem}") from None
    if not isinstance(document, dict):
        raise CampaignFileError(f"{path}: a campaign file must be a mapping of keys to values")
    try:
        campaign = Campaign.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise CampaignFileError(f"{path}: {field}: {first['msg']}") from None
    if campaign.id != path.stem:
        raise CampaignFileError(f"{path}: id {campaign.id!r} must match the file name {path.stem!r}")
    return campaign


def campaign_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.yaml") if p.name not in NOT_CAMPAIGNS)


def load_campaigns(directory: Path) -> list[Campaign]:
    """Every campaign in `directory`; the first broken file stops the load."""
    return [load_campaign(path) for path in campaign_files(directory)]
