"""`/reports`: the campaign reports as HTML for operators, behind HTTP Basic, charts drawn as SVG on the server.

The pages are loaded in Debian's headless Chromium (as the preference-center test does), which must
find each chart rendered; without Chromium that test is skipped, except in CI.
"""

import base64
import os
import shutil
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from playwright.async_api import async_playwright

from carecast.api.app import create_app
from tests.serving import serve
from tests.test_report import win_back  # noqa: F401 (the fixture: a campaign's rows)

pytestmark = pytest.mark.store

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
KEY = "operator key for the test"


async def unreachable_temporal():
    raise RuntimeError("not needed here")


def basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"ops:{password}".encode()).decode()}


@pytest.fixture
def app(settings, engine, win_back):  # noqa: F811
    return create_app(replace(settings, operator_key=KEY), engine=engine, temporal=unreachable_temporal)


async def test_reports_need_the_operator_key_over_http_basic(app, settings, engine):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://carecast") as client:
        for headers in ({}, basic("wrong"), {"Authorization": f"Bearer {KEY}"}, {"Authorization": "Basic !!"},
                        {"Authorization": "Basic 6enp6Q=="}):  # fmt: skip
            refused = await client.get("/reports/win_back", headers=headers)
            assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic realm=")
        shown = await client.get("/reports", headers=basic(KEY))
        assert shown.status_code == 200 and "set-cookie" not in shown.headers
        assert "<script" not in shown.text and 'href="/reports/win_back"' in shown.text
        assert (await client.get("/reports/nothing_like_it", headers=basic(KEY))).status_code == 404
    unset = create_app(settings, engine=engine, temporal=unreachable_temporal)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=unset), base_url="http://carecast") as client:
        assert (await client.get("/reports", headers=basic(KEY))).status_code == 503


NO_CHROMIUM = "Debian's chromium is not installed (apt-get install chromium; .ci/run does it)"


@pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"), reason=NO_CHROMIUM)
async def test_a_campaign_page_draws_its_funnel_sends_and_lift_in_chromium(app, tmp_path):
    async with serve(lambda _url: app) as url, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            context = await browser.new_context(http_credentials={"username": "ops", "password": KEY})
            page = await context.new_page()
            await page.goto(f"{url}/reports")
            await page.get_by_role("link", name="win_back").click()
            await page.wait_for_url(f"{url}/reports/win_back")
            for chart in ("funnel", "sends", "lift"):
                drawn = page.locator(f"figure#{chart} svg")
                box = await drawn.bounding_box()
                assert box is not None and box["width"] > 300 and box["height"] > 80, chart
                assert await drawn.locator("path").count() > 3, chart  # bars, dots and axes, not an empty frame
            assert "conversion 4/11 treated vs 1/4 holdout" in await page.inner_text("main")
            await page.screenshot(path=str(tmp_path / "win_back.png"), full_page=True)
        finally:
            await browser.close()
