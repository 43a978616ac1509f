"""Small builders for test data."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
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


def cli_environment(tmp_path, database_url: str, temporal_env, task_queue: str) -> dict[str, str]:
    """The environment a `carecast` command runs in against a test's store, dev server and task queue."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARECAST_")}
    env.update(
        CARECAST_HOME=str(tmp_path / "home"),
        CARECAST_DATABASE_URL=database_url,
        CARECAST_TEMPORAL_ADDRESS=temporal_env.client.service_client.config.target_host,
        CARECAST_TASK_QUEUE=task_queue,
        CARECAST_SECRET_KEY="test-secret-0123456789-0123456789",
    )
    return env


def legacy_link_token(secret: str, contact_id: str, topic: str | None = None) -> str:
    """A preference link as carecast made them before links carried their age: base64 JSON and an HMAC."""
    key = hashlib.sha256(b"carecast links\0" + secret.encode()).digest()
    payload = base64.urlsafe_b64encode(json.dumps([contact_id, topic]).encode()).rstrip(b"=").decode()
    signature = base64.urlsafe_b64encode(hmac.digest(key, payload.encode(), "sha256")[:16]).rstrip(b"=").decode()
    return f"{payload}.{signature}"


async def pollers(client, task_queue: str, activities: bool = True) -> set[int]:
    """The ids of the processes polling `task_queue` for activity (else workflow) tasks."""
    from carecast.temporal import pollers

    return {int(identity.split("@")[0]) for identity in await pollers(client, task_queue, activities)}
