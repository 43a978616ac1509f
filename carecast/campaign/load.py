"""Reading the campaign folder into models, every problem at its line and column."""

from __future__ import annotations

from pathlib import Path

from carecast.campaign.documents import InvalidFile, Problem, problem_at, read_yaml, validate
from carecast.campaign.graph import journey_problems
from carecast.campaign.model import Campaign

# House files that live beside campaigns but are not campaigns.
NOT_CAMPAIGNS = {"policy.yaml", "lifecycle.yaml"}


def load_campaign(path: Path) -> Campaign:
    document = read_yaml(path)
    campaign = validate(document, Campaign)
    problems: list[Problem] = []
    if campaign.id != path.stem:
        problems.append(
            problem_at(path, document.node_at(("id",)), f"id {campaign.id!r} must match the file name {path.stem!r}")
        )
    if campaign.is_journey:
        problems += [problem_at(path, document.node_at(loc), message) for loc, message in journey_problems(campaign)]
    if problems:
        raise InvalidFile(problems)
    return campaign


def campaign_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.yaml") if p.name not in NOT_CAMPAIGNS)


def load_campaigns(directory: Path) -> list[Campaign]:
    """Every campaign in `directory`; raises one InvalidFile with the problems of all files."""
    campaigns, problems = [], []
    for path in campaign_files(directory):
        try:
            campaigns.append(load_campaign(path))
        except InvalidFile as exc:
            problems += exc.problems
    if problems:
        raise InvalidFile(problems)
    return campaigns
