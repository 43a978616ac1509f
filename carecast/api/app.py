"""The FastAPI application."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine
from temporalio.client import Client

from carecast.api.auth import require_api_key
from carecast.api.contacts import contacts_router
from carecast.api.events import events_router
from carecast.api.guard import Guard
from carecast.api.preference_center import PreferenceCenter, preference_center_router
from carecast.api.reports import reports_router
from carecast.api.webhooks import webhooks_router
from carecast.campaign.house_rules import load_house_rules
from carecast.config import Settings
from carecast.intake.link_requests import link_requester
from carecast.intake.settlement import flush
from carecast.store.db import make_engine, make_sessionmaker, ping
from carecast.store.house_rules import DeployedHouseRules
from carecast.temporal import connect

HEALTH_TIMEOUT_SECONDS = 3.0

log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    engine: Engine | None = None,
    temporal: Callable[[], Awaitable[Client]] | None = None,
) -> FastAPI:
    """The API for `settings`; tests may hand in an engine or a Temporal client factory."""
    engine = engine or make_engine(settings.database_url)
    connect_temporal = temporal or (lambda: connect(settings))
    clients: dict[str, Client] = {}

    async def temporal_client() -> Client:
        if "temporal" not in clients:
            clients["temporal"] = await connect_temporal()
        return clients["temporal"]

    sessions = make_sessionmaker(engine)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        try:  # what the last events' deliveries left to write (carecast/intake/settlement.py)
            await asyncio.to_thread(flush, sessions)
        except Exception:
            log.exception("the last settlement could not be written; the workers' relay delivers those rows again")
        engine.dispose()

    # The interactive docs are off unless asked for (CARECAST_API_DOCS=1): they map the API for anyone.
    docs = (
        dict(docs_url="/docs", redoc_url="/redoc", openapi_url="/openapi.json")
        if settings.api_docs
        else dict(docs_url=None, redoc_url=None, openapi_url=None)
    )
    app = FastAPI(title="carecast", lifespan=lifespan, **docs)
    app.add_middleware(Guard)
    auth = require_api_key(settings.api_key)
    address_key = settings.address_key()
    app.include_router(contacts_router(sessions, temporal_client, settings.task_queue, auth, address_key))
    app.include_router(events_router(sessions, temporal_client, settings.task_queue, auth, address_key))
    app.include_router(webhooks_router(settings, sessions, temporal_client))
    rules = DeployedHouseRules(sessions, fallback=load_house_rules(settings.campaigns_dir))
    request_link = link_requester(sessions, temporal_client, settings.task_queue)
    center = PreferenceCenter(sessions, settings.link_signer(), rules, request_link)
    app.include_router(preference_center_router(center))
    app.include_router(reports_router(settings, sessions))

    @app.get("/metrics", dependencies=[Depends(auth)])
    async def metrics() -> Response:
        """This API process's counters (events in, webhook results, guardrail breaches), in Prometheus' format."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """Whether the database and Temporal answer; 503 when either does not (why: in the server's log)."""
        checks: dict[str, dict[str, Any]] = {}
        try:
            await asyncio.wait_for(asyncio.to_thread(ping, engine), HEALTH_TIMEOUT_SECONDS)
            checks["database"] = {"ok": True}
        except Exception as exc:  # any failure means "not reachable"; the log says why, the public answer not
            log.warning("health: the database does not answer: %s", _describe(exc))
            checks["database"] = {"ok": False}
        try:
            client = await asyncio.wait_for(temporal_client(), HEALTH_TIMEOUT_SECONDS)
            await asyncio.wait_for(client.service_client.check_health(), HEALTH_TIMEOUT_SECONDS)
            checks["temporal"] = {"ok": True}
        except Exception as exc:
            clients.pop("temporal", None)
            log.warning("health: Temporal at %s does not answer: %s", settings.temporal_address, _describe(exc))
            checks["temporal"] = {"ok": False}
        healthy = all(check["ok"] for check in checks.values())
        return JSONResponse(
            {"status": "ok" if healthy else "unavailable", **checks}, status_code=200 if healthy else 503
        )

    return app


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return f"no answer within {HEALTH_TIMEOUT_SECONDS:g}s"
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
