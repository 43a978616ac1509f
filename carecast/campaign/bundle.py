"""A deployed version's bundle: the campaign, every template file it sends, and who its emails come from.

Hashed together, so editing a template (or the sender, or the postal address) is a
new version at the next `carecast deploy`, and journeys and broadcasts render from
the bundle they started with: a template edited or deleted afterwards changes
nothing already under way. House *limits* (quiet hours, caps, send rates) are not in
it: a tightened rule reaches running journeys at once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from jinja2 import Environment, TemplateSyntaxError, meta

from carecast.campaign.model import Campaign
from carecast.policy.model import EmailIdentity


@dataclass(frozen=True)
class Bundle:
    templates: dict[str, str]  # file name -> source: every part and locale of each template, and its partials
    identity: EmailIdentity  # the campaign's sender (else the house's), reply-to, postal address, mailto

    def content_hash(self, campaign: Campaign) -> str:
        """Changes exactly when what the version sends changes (not the YAML's layout)."""
        canonical = json.dumps(
            {
                "campaign": campaign.model_dump(mode="json"),
                "templates": self.templates,
                "identity": asdict(self.identity),
            },
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


def build_bundle(campaign: Campaign, templates_dir: Path, house: EmailIdentity) -> Bundle:
    """The bundle of `campaign` from the templates folder and the house's email identity."""
    files: dict[str, str] = {}
    for name in sorted({send.template for _, send in campaign.sends()}):
        for path in sorted(templates_dir.glob(f"{name}.*.j2")):
            files[path.name] = path.read_text(encoding="utf-8")
    _add_partials(files, templates_dir)
    sender = campaign.sender
    identity = EmailIdentity(
        sender=(sender.from_ if sender and sender.from_ else house.sender),
        reply_to=(sender.reply_to if sender and sender.reply_to else house.reply_to),
        postal_address=house.postal_address,
        unsubscribe_mailto=house.unsubscribe_mailto,
    )
    return Bundle(files, identity)


def _add_partials(files: dict[str, str], templates_dir: Path) -> None:
    """Adds what the files include, import or extend, and what those do; all partials for a computed name."""
    environment = Environment()
    pending = list(files.values())
    while pending:
        try:
            names = list(meta.find_referenced_templates(environment.parse(pending.pop())))
        except TemplateSyntaxError:
            continue  # `carecast validate` reports it; the bundle holds the file as it is
        if None in names:  # a name computed at render time: any partial may be the one
            names = [p.name for p in templates_dir.glob("_*.j2")] + [n for n in names if n]
        for name in names:
            path = templates_dir / name
            if name not in files and path.is_file():
                files[name] = path.read_text(encoding="utf-8")
                pending.append(files[name])


def identity_from(stored: dict | None) -> EmailIdentity | None:
    return EmailIdentity(**stored) if stored else None
