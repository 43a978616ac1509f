"""`carecast validate`: every campaign, the house rules, the lifecycle and every template.

Errors stop a deploy; warnings (an SMS over three segments) are shown and do not.
Templates are rendered for real, with the campaign's sample contact and event,
so an undefined variable, a syntax error or a marketing email without its
unsubscribe link is found here and never by a customer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from carecast.campaign.documents import InvalidFile, Problem, problem_at, read_yaml
from carecast.campaign.house_rules import load_house_rules
from carecast.campaign.lifecycle import LIFECYCLE_FILE, Lifecycle, load_lifecycle
from carecast.campaign.load import NOT_CAMPAIGNS, campaign_files, load_campaign
from carecast.campaign.model import Campaign
from carecast.campaign.steps.send import SendAction
from carecast.campaign.steps.update import Update
from carecast.campaign.stored_types import text_warnings
from carecast.policy.model import HouseRules
from carecast.render.context import template_context
from carecast.render.links import LinkSigner
from carecast.render.segments import count_segments
from carecast.render.templates import PARTS_BY_CHANNEL, TemplateError, TemplateRenderer

MAX_SMS_SEGMENTS = 3
SAMPLE_LINKS = LinkSigner("validate", "https://care.example.com")
SAMPLE_CONTACT: dict[str, Any] = {
    "id": "sample-1",
    "email": "sample@example.com",
    "phone": "+14155550100",
    "timezone": "America/New_York",
    "locale": "en-US",
    "lifecycle_stage": "active",
    "care_agent": "Sam from Acme care",
    "attributes": {},
}


@dataclass
class Report:
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    campaigns: list[Campaign] = field(default_factory=list)
    lifecycle: Lifecycle | None = None
    house_rules: HouseRules = field(default_factory=HouseRules)

    @property
    def ok(self) -> bool:
        return not self.errors


def sample_context(campaign: Campaign, postal_address: str | None = None) -> dict[str, Any]:
    contact = {**SAMPLE_CONTACT, **campaign.samples.contact}
    contact["attributes"] = {**SAMPLE_CONTACT["attributes"], **(campaign.samples.contact.get("attributes") or {})}
    return template_context(
        contact, campaign.samples.event, campaign.id, campaign.name, campaign.topic, SAMPLE_LINKS, postal_address
    )


def _targets(campaigns_dir: Path, paths: list[Path], report: Report) -> tuple[list[Path], list[Path]]:
    """The folders whose house files to check (campaigns' own first), and the campaign files."""
    if not paths:
        return [campaigns_dir], campaign_files(campaigns_dir)
    folders: list[Path] = []
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            folders.append(path)
            files += campaign_files(path)
        elif not path.exists():
            report.errors.append(Problem(path, None, None, "no such file or folder"))
        elif path.name in NOT_CAMPAIGNS:
            folders.append(path.parent)
        else:
            files.append(path)  # checked against the campaigns folder's house files, as deploy does
    unique_files = list({p.resolve(): p for p in files}.values())
    return list(dict.fromkeys(p.resolve() for p in folders)) or [campaigns_dir], unique_files


def _template_problems(
    campaign: Campaign, send: SendAction, renderer: TemplateRenderer, report: Report, path: Path, template_node
) -> None:
    """The problems of one send's templates, rendered with the campaign's samples; `template_node` is where
    the campaign file names the template."""
    postal_address = report.house_rules.email.postal_address
    context = sample_context(campaign, postal_address)
    channels = send.channel_list()
    available = [c for c in channels if all(renderer.variants(send.template, p) for p in PARTS_BY_CHANNEL[c])]
    missing = [c for c in channels if c not in available]
    if send.channels == "preferred":
        if not available:
            message = f"template {send.template!r} has no part for any channel in {renderer.directory}"
            report.errors.append(problem_at(path, template_node, message))
    else:
        for channel in missing:
            parts = ", ".join(f"{send.template}.{p}.j2" for p in PARTS_BY_CHANNEL[channel])
            report.errors.append(problem_at(path, template_node, f"{channel} needs {parts} in {renderer.directory}"))
    for channel in available:
        parts = PARTS_BY_CHANNEL[channel] + (("email.html",) if channel == "email" else ())
        rendered: list[str] = []
        broken = False
        for part in parts:
            for filename in renderer.variants(send.template, part):
                try:
                    text = renderer.render_file(filename, context)
                except TemplateError as exc:
                    detail = exc.detail
                    if exc.undefined:
                        detail += (f" (rendering campaign {campaign.id}'s samples: if the name is right, give it a "
                                   f"value under `samples:` in {path.name})")  # fmt: skip
                    report.errors.append(Problem(exc.path or path, exc.line, None, detail))
                    broken = True
                    continue
                rendered.append(text)
                if channel == "sms":
                    count = count_segments(text)
                    if count.segments > MAX_SMS_SEGMENTS:
                        report.warnings.append(
                            Problem(
                                renderer.directory / filename,
                                None,
                                None,
                                f"this SMS takes {count.segments} segments ({count.units} {count.encoding} "
                                f"characters); keep it to {MAX_SMS_SEGMENTS} or fewer",
                            )  # fmt: skip
                        )
        needs_link = channel == "email" and campaign.category == "marketing" and not broken
        if needs_link and not any(context["unsubscribe_url"] in text for text in rendered):
            report.errors.append(
                Problem(
                    renderer.directory / f"{send.template}.email.txt.j2",
                    None,
                    None,
                    "a marketing email must contain its unsubscribe link: add {{ unsubscribe_url }}",
                )  # fmt: skip
            )
        if needs_link and not (postal_address and any(postal_address in text for text in rendered)):
            hint = "" if postal_address else " and set email.postal_address in policy.yaml"
            report.errors.append(
                Problem(
                    renderer.directory / f"{send.template}.email.txt.j2",
                    None,
                    None,
                    f"a marketing email must show the postal address (CAN-SPAM): add {{{{ postal_address }}}}{hint}",
                )  # fmt: skip
            )


def _stage_problems(campaign: Campaign, path: Path, lifecycle: Lifecycle | None, report: Report) -> None:
    named: list[tuple[tuple, str]] = []
    if campaign.trigger is not None and campaign.trigger.stage is not None:
        named.append((("trigger", "stage"), campaign.trigger.stage))
    for n, step in enumerate(campaign.steps):
        if isinstance(step, Update) and step.update.lifecycle_stage is not None:
            named.append((("steps", n, "update", "lifecycle_stage"), step.update.lifecycle_stage))
    if not named:
        return
    document = read_yaml(path)
    known = lifecycle.names if lifecycle else []
    for loc, stage in named:
        if stage not in known:
            where = f"; stages are {', '.join(known)}" if known else "; there is no campaigns/lifecycle.yaml"
            report.errors.append(problem_at(path, document.node_at(loc), f"unknown lifecycle stage {stage!r}{where}"))


def validate_project(
    campaigns_dir: Path, templates_dir: Path, paths: Iterable[Path] | None = None, store: Session | None = None
) -> Report:
    """Everything `carecast validate` checks; `paths` limits what is checked.

    A path may be a campaign file, a folder of them (with its own `policy.yaml` and
    `lifecycle.yaml`), or one of those two house files, which is checked as what it is.
    With a `store`, filters are also checked against how the stored contacts hold the
    attributes they compare (carecast/campaign/stored_types.py).
    """
    report = Report()
    folders, files = _targets(campaigns_dir, [Path(p) for p in paths or ()], report)
    for folder in folders:
        for load in (load_house_rules, load_lifecycle):
            try:
                loaded = load(folder)
            except InvalidFile as exc:
                report.errors += exc.problems
                continue
            if isinstance(loaded, Lifecycle):
                report.lifecycle = report.lifecycle or loaded
            elif isinstance(loaded, HouseRules) and folder == folders[0]:
                report.house_rules = loaded
    if store is not None:
        for folder in folders:
            if (lifecycle := folder / LIFECYCLE_FILE).exists():
                report.warnings += text_warnings(read_yaml(lifecycle), store)
    renderer = TemplateRenderer(templates_dir)
    for path in files:
        try:
            campaign = load_campaign(path)
        except InvalidFile as exc:
            report.errors += exc.problems
            continue
        report.campaigns.append(campaign)
        _stage_problems(campaign, path, report.lifecycle, report)
        document = read_yaml(path)
        if store is not None:
            report.warnings += text_warnings(document, store)
        steps = {step.id: n for n, step in enumerate(campaign.steps)}
        for step_id, send in campaign.sends():
            where = ("send", "template") if campaign.send is not None else ("steps", steps[step_id], "send", "template")
            _template_problems(campaign, send, renderer, report, path, document.node_at(where))
    return report
