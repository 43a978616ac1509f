"""The scratch store a simulation runs against: thrown away afterwards, never the real one.

It holds the campaigns (the deployed versions, or the local files as `deploy` would store
them), the house rules, and the one contact: described in a file, or copied from the real
store with what the policy judges them by — preferences, suppressions of their addresses,
the messages already sent to them (they count toward caps and the ceiling) and the journeys
they finished (re-entry rules). Journeys still under way for them are not simulated.
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import Session

from carecast.campaign.lifecycle import Lifecycle, load_lifecycle
from carecast.campaign.validate import validate_project
from carecast.config import Settings
from carecast.contacts.kept import AddressKey
from carecast.contacts.schema import ContactInput
from carecast.contacts.writer import write_contacts
from carecast.deploy import deploy_versions
from carecast.simulation.scenario import Profile, ScenarioError
from carecast.store.campaigns import DeployedVersion, active_versions
from carecast.store.db import make_engine, make_sessionmaker
from carecast.store.house_rules import deploy_house_rules
from carecast.store.migrate import upgrade
from carecast.store.models import (
    CampaignControl,
    CampaignVersion,
    Contact,
    Delivery,
    Enrolment,
    HouseRulesVersion,
    Preferences,
    Suppression,
)

TASK_QUEUE = "simulate"


@dataclass
class Scratch:
    settings: Settings  # the real settings, pointed at the scratch home, store and outbox
    engine: Engine
    contact_id: str
    campaigns: list[DeployedVersion]  # the active versions the simulation runs
    lifecycle: Lifecycle | None


def scratch_settings(settings: Settings, folder: Path, campaigns_dir: Path | None, outbox: Path | None) -> Settings:
    """Settings for the scratch run: its own store, outbox (or the one asked for) and queue, and a throwaway secret.

    The secret is new for every run, so no link in a simulated message works against the real store.
    """
    return dataclasses.replace(
        settings,
        home=folder,
        database_url=f"sqlite:///{folder / 'store.db'}",
        outbox_dir=outbox or folder / "outbox",
        task_queue=TASK_QUEUE,
        campaigns_dir=campaigns_dir or settings.campaigns_dir,
        secret_key=secrets.token_urlsafe(32),
        previous_secret_keys=(),
        temporal_payload_key=None,
        previous_payload_keys=(),
    )


def open_scratch(
    settings: Settings, folder: Path, campaigns_dir: Path | None, outbox: Path | None
) -> tuple[Settings, Engine]:
    scratch = scratch_settings(settings, folder, campaigns_dir, outbox)
    engine = make_engine(scratch.database_url)
    upgrade(engine)
    return scratch, engine


def deploy_files(session: Session, campaigns_dir: Path, templates_dir: Path) -> None:
    """The folder's campaigns and house rules, stored as `carecast deploy` would; refuses a folder with errors."""
    report = validate_project(campaigns_dir, templates_dir)
    if not report.ok:
        listed = "\n".join(str(problem) for problem in report.errors)
        raise ScenarioError(f"{campaigns_dir} has errors; `carecast validate` shows them:\n{listed}")
    deploy_versions(session, report.campaigns, templates_dir, report.house_rules.email)
    deploy_house_rules(session, campaigns_dir)


def copy_deployed(real: Session, scratch: Session) -> None:
    """The active campaign versions, their operators' holds, and the newest house rules."""
    _copy(real, scratch, CampaignVersion, CampaignVersion.active.is_(True))
    _copy(real, scratch, CampaignControl)
    newest = real.scalar(select(HouseRulesVersion.id).order_by(HouseRulesVersion.id.desc()).limit(1))
    if newest is not None:
        _copy(real, scratch, HouseRulesVersion, HouseRulesVersion.id == newest)


def copy_contact(real: Session, scratch: Session, contact_id: str) -> None:
    """The stored contact, and what the policy and re-entry rules judge them by."""
    contact = real.get(Contact, contact_id)
    if contact is None:
        raise ScenarioError(
            f"no contact {contact_id!r} in the store; describe one in a file (see carecast simulate --help)"
        )
    _copy(real, scratch, Contact, Contact.id == contact_id)
    _copy(real, scratch, Preferences, Preferences.contact_id == contact_id)
    addresses = [a for a in (contact.email, contact.phone) if a]
    _copy(real, scratch, Suppression, Suppression.address.in_(addresses))
    _copy(real, scratch, Delivery, Delivery.contact_id == contact_id, Delivery.sent_at.is_not(None))
    _copy(real, scratch, Enrolment, Enrolment.contact_id == contact_id, Enrolment.ended_at.is_not(None))


def add_profile(scratch: Session, profile: Profile, address_key: AddressKey) -> None:
    """A contact described in a file, written as `PUT /v1/contacts/{id}` would write it."""
    item = ContactInput.model_validate(profile.model_dump(exclude_unset=True) | {"id": profile.id})
    write_contacts(scratch, [item], source="simulate", address_key=address_key)


def loaded(scratch: Settings, engine: Engine, contact_id: str) -> Scratch:
    with make_sessionmaker(engine)() as session:
        campaigns = active_versions(session)
    if not campaigns:
        raise ScenarioError(
            "no campaign is deployed: `carecast deploy` them, or simulate the files with --campaigns campaigns/"
        )
    return Scratch(scratch, engine, contact_id, campaigns, load_lifecycle(scratch.campaigns_dir))


def _copy(real: Session, scratch: Session, model: Any, *where: Any) -> None:
    rows = [dict(row) for row in real.execute(select(model.__table__).where(*where)).mappings()]
    if rows:
        scratch.execute(insert(model.__table__), rows)
