"""Small builders for test data."""

from __future__ import annotations

from pathlib import Path

from carecast.store.models import Contact, Preferences

ROOT = Path(__file__).resolve().parent.parent


def add_contact(session, contact_id="c-1", *, email="ada@example.com", phone="+14155550101",
                email_consent=True, sms_consent=False, preferred=(), **fields) -> Contact:  # fmt: skip
    contact = Contact(
        id=contact_id, email=email, phone=phone, attributes=fields.pop("attributes", {"first_name": "Ada"}), **fields
    )
    session.add(contact)
    session.add(
        Preferences(
            contact_id=contact_id,
            email_consent=email_consent,
            sms_consent=sms_consent,
            preferred_channels=list(preferred),
        )
    )
    return contact


def deploy(session, templates_dir, *campaigns):
    """Deploys campaigns (file paths, or models of the shipped folder) as `carecast deploy` would, with bundles."""
    from carecast.campaign.bundle import build_bundle
    from carecast.campaign.house_rules import load_house_rules
    from carecast.deploy import deploy_files
    from carecast.store.campaigns import deploy_campaign

    paths = [Path(c) for c in campaigns if isinstance(c, (str, Path))]
    house = load_house_rules(ROOT / "campaigns").email
    models = [c for c in campaigns if not isinstance(c, (str, Path))]
    return deploy_files(session, paths, Path(templates_dir)) + [
        deploy_campaign(session, c, build_bundle(c, Path(templates_dir), house)) for c in models
    ]


def deliver_attempt():
    """An activity environment for `deliver`: an attempt that started now, with the deadline a journey gives it."""
    from dataclasses import replace

    from temporalio.testing import ActivityEnvironment

    from carecast.store.models import utcnow
    from workflows.journey.contract import DELIVER_TIMEOUT

    environment = ActivityEnvironment()
    environment.info = replace(environment.info, started_time=utcnow(), start_to_close_timeout=DELIVER_TIMEOUT)
    return environment
