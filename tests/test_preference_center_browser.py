"""A customer changes their preferences in headless Chromium; the store and the next message follow.

Debian's Chromium (/usr/bin/chromium, installed by .ci/run) driven by Playwright;
no browser is downloaded. Without Chromium the test says so and is skipped,
except in CI, where that is a failure.
"""

import os
import shutil
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from activities.deliver import DeliveryActivities
from carecast.api.app import create_app
from carecast.channels.outbox import OutboxProvider
from carecast.policy.model import HouseRules
from carecast.render.templates import TemplateRenderer
from carecast.store.models import Preferences
from tests.factories import add_contact, deliver_attempt
from tests.serving import serve
from workflows.journey.contract import DeliverInput

pytestmark = pytest.mark.store

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError("CI needs Debian's chromium for the browser test: apt-get install chromium")
    pytest.skip(
        "Debian's chromium is not installed (apt-get install chromium; .ci/run does it)", allow_module_level=True
    )


async def unreachable_temporal():
    raise RuntimeError("not needed here")


def care_message(n: int) -> DeliverInput:
    return DeliverInput(
        workflow_id=f"journey/delivery_delay/c-1/A-{n}", campaign_id="delivery_delay", campaign_name="Delay",
        campaign_version=1, category="care", step_id="apologise", template="welcome",
        channels=["email", "sms"], contact_id="c-1", trigger_event_id=None, topic="order_updates",
    )  # fmt: skip


async def test_a_customer_changes_channel_and_quiet_hours_and_the_next_message_follows(
    settings, engine, sessions, tmp_path
):
    settings = replace(settings, secret_key="browser test")
    with sessions.begin() as session:
        add_contact(session, "c-1", email="ada@example.com", phone="+14155550101", sms_consent=True,
                    preferred=("sms",), timezone="Europe/Paris")  # fmt: skip
    token = settings.link_signer().token("c-1", version=0)

    app = create_app(settings, engine=engine, temporal=unreachable_temporal)
    async with serve(lambda _url: app) as url, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = await browser.new_page()
            await page.goto(f"{url}/u/{token}")
            await page.get_by_role("radio", name="Email").check()
            await page.get_by_label("From", exact=True).fill("11:00")
            await page.get_by_label("Until", exact=True).fill("13:00")
            await page.get_by_role("button", name="Save my choices").click()
            await page.wait_for_url(f"{url}/u/{token}?saved=1")
            assert await page.get_by_role("status").inner_text() == "Saved. Your choices apply from now on."
        finally:
            await browser.close()

    with sessions() as session:
        prefs = session.get(Preferences, "c-1")
        assert prefs.preferred_channels == ["email"]
        assert (prefs.quiet_hours_start, prefs.quiet_hours_end) == ("11:00", "13:00")

    def deliver_at(hour: int, n: int):
        at = datetime(2026, 12, 1, hour - 1, 0, tzinfo=UTC)  # Paris is UTC+1 in December
        activities = DeliveryActivities(
            sessions, TemplateRenderer(ROOT / "templates"), OutboxProvider(tmp_path / "outbox", echo=lambda _: None),
            HouseRules(default_timezone="UTC"), settings.link_signer(), clock=lambda: at,
        )  # fmt: skip
        return deliver_attempt().run(activities.deliver, care_message(n))

    during = deliver_at(12, 1)
    assert (during.status, during.reason, during.deferred_until_local) == (
        "deferred",
        "quiet_hours",
        "13:00 Europe/Paris",
    )
    after = deliver_at(14, 2)
    assert (after.status, after.channel) == ("sent", "email")
