"""`GET /reports` and `/reports/{campaign}`: the campaign reports as HTML pages for operators.

Behind HTTP Basic with the operator key (`CARECAST_OPERATOR_KEY` as the password, any user
name): a browser sends it when it navigates, as it cannot a bearer header, and no cookie means
no cross-site request to forge. The pages hold no script; their charts are SVG drawn on the
server (carecast/reporting/charts.py).
"""

from __future__ import annotations

import asyncio
import base64
import hmac
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy.orm import Session, sessionmaker

from carecast.campaign.house_rules import local_house_spec
from carecast.campaign.kpis import HouseGuardrails
from carecast.config import Settings
from carecast.reporting import charts
from carecast.reporting.campaign import (
    CampaignReport,
    campaign_report,
    house_guardrails,
    reported_campaigns,
    sends_per_day,
)

PAGES = Path(__file__).parent / "pages"
REALM = 'Basic realm="carecast reports", charset="UTF-8"'
# Reports are not to be kept by a shared cache; the Guard middleware adds the pages' CSP and the rest.
NO_STORE = {"Cache-Control": "no-store"}


def reports_router(settings: Settings, sessions: sessionmaker[Session]) -> APIRouter:
    router = APIRouter()
    pages = Environment(loader=FileSystemLoader(PAGES), autoescape=select_autoescape(["j2"]))
    local = local_house_spec(settings.campaigns_dir).guardrails

    def refused(request: Request) -> HTMLResponse | None:
        """The answer to a request without the operator key, or None when it has it."""
        if settings.operator_key is None:
            return HTMLResponse("<h1>Set CARECAST_OPERATOR_KEY to see the reports</h1>", 503, NO_STORE)
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        try:
            _, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except ValueError:  # not base64 (binascii.Error), not ASCII, not UTF-8
            password = ""
        if scheme.lower() == "basic" and hmac.compare_digest(password.encode(), settings.operator_key.encode()):
            return None
        return HTMLResponse("<h1>The operator key, please</h1>", 401, NO_STORE | {"WWW-Authenticate": REALM})

    @router.get("/reports", response_class=HTMLResponse)
    async def every_campaign(request: Request) -> HTMLResponse:
        if (refusal := refused(request)) is not None:
            return refusal
        reports = await asyncio.to_thread(_all, sessions, local)
        return HTMLResponse(pages.get_template("reports.html.j2").render(reports=reports), headers=NO_STORE)

    @router.get("/reports/{campaign_id}", response_class=HTMLResponse)
    async def one_campaign(request: Request, campaign_id: str) -> HTMLResponse:
        if (refusal := refused(request)) is not None:
            return refusal
        found = await asyncio.to_thread(_one, sessions, local, campaign_id)
        if found is None:
            return HTMLResponse("<h1>No such campaign was ever deployed</h1>", 404, NO_STORE)
        report, figures = found
        page = pages.get_template("report.html.j2").render(report=report, charts=figures)
        return HTMLResponse(page, headers=NO_STORE)

    return router


def _all(sessions: sessionmaker[Session], local: HouseGuardrails) -> list[CampaignReport]:
    with sessions() as session:
        house = house_guardrails(session, local)
        return [r for r in (campaign_report(session, c, house) for c in reported_campaigns(session)) if r]


def _one(sessions: sessionmaker[Session], local: HouseGuardrails, campaign_id: str):
    with sessions() as session:
        report = campaign_report(session, campaign_id, house_guardrails(session, local))
        if report is None:
            return None
        days, by_channel = sends_per_day(session, campaign_id)
    newest = report.versions[0]
    stages = [("entered", newest.entered), ("sent", newest.total("sent")), ("delivered", newest.total("delivered")),
              ("opened", newest.total("opened")), ("clicked", newest.total("clicked"))]  # fmt: skip
    if newest.lift is not None or newest.converted:
        stages.append(("converted", newest.converted))
    lifts = [(f"version {v.version}", v.lift.difference, v.lift.interval.low, v.lift.interval.high)
             for v in report.versions if v.lift is not None and v.lift.difference is not None]  # fmt: skip
    figures = {"funnel": Markup(charts.funnel(stages)), "sends": Markup(charts.sends_per_day(days, by_channel))}
    if lifts:
        figures["lift"] = Markup(charts.lift(lifts))
    return report, figures
