"""The README's compliance table names tests that exist, and the rules it states that no other test shows."""

import ast
import re
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from activities.deliver import DeliveryActivities
from carecast.api.app import create_app
from carecast.channels.outbox import OutboxProvider
from carecast.policy.model import HouseRules
from carecast.render.templates import TemplateRenderer
from carecast.store.models import Delivery, Preferences
from tests.factories import add_contact, deliver_attempt
from workflows.journey.contract import DeliverInput

ROOT = Path(__file__).resolve().parent.parent
NAMED_TEST = re.compile(r"`(tests/[\w/]+\.py)::(test_\w+)`")


def compliance_rows() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Compliance", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| rule")]


def test_every_row_of_the_compliance_table_names_tests_that_exist():
    rows = compliance_rows()
    assert len(rows) >= 10
    for row in rows:
        named = NAMED_TEST.findall(row)
        assert named, f"this row names no test: {row[:80]}"
        for path, name in named:
            tree = ast.parse((ROOT / path).read_text())
            functions = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
            assert name in functions, f"{path} has no {name}"


async def no_temporal():
    raise RuntimeError("not needed here")


@pytest.mark.store
async def test_a_one_click_unsubscribe_is_honoured_by_the_very_next_message(settings, engine, sessions, tmp_path):
    with sessions.begin() as session:
        add_contact(session)
    app = create_app(settings, engine=engine, temporal=no_temporal)
    path = "/u/" + settings.link_signer().token("c-1", "news", version=0)  # the link in the List-Unsubscribe header
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://carecast") as client:
        answer = await client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert answer.status_code == 200
    provider = OutboxProvider(tmp_path / "outbox", echo=lambda line: None)
    renderer = TemplateRenderer(ROOT / "templates")
    deliver = DeliveryActivities(sessions, renderer, provider, HouseRules(), settings.link_signer()).deliver
    news = DeliverInput(workflow_id="journey/welcome/c-1/e-1", campaign_id="welcome", campaign_name="Welcome",
                        campaign_version=1, category="marketing", step_id="welcome_email", template="welcome",
                        channels=["email"], contact_id="c-1", trigger_event_id=None, topic="news")  # fmt: skip
    result = deliver_attempt().run(deliver, news)
    assert (result.status, result.reason) == ("skipped", "topic_unsubscribed")
    assert not (tmp_path / "outbox").exists() or not any((tmp_path / "outbox").iterdir())
    with sessions() as session:
        assert session.get(Delivery, result.delivery_id).status == "skipped"


@pytest.mark.store
async def test_texts_and_calls_start_without_consent(settings, engine, sessions):
    app = create_app(replace(settings, api_key="a" * 32), engine=engine, temporal=no_temporal)
    auth = {"Authorization": f"Bearer {'a' * 32}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://carecast") as client:
        answer = await client.put("/v1/contacts/c-5", json={"phone": "+14155550105"}, headers=auth)
    assert answer.status_code == 200
    with sessions() as session:
        prefs = session.get(Preferences, "c-5")
    assert (prefs.email_consent, prefs.sms_consent, prefs.voice_consent) == (True, False, False)
