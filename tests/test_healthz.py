"""GET /healthz: 200 when the database and Temporal both answer, 503 naming what does not (why: in the log)."""

import socket

import httpx
import pytest

from carecast.api.app import create_app
from carecast.store.db import make_engine


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def get_health(app) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://carecast") as http:
        return await http.get("/healthz")


@pytest.mark.integration
async def test_healthy_when_database_and_temporal_answer(settings, engine, dev_server_env):
    async def temporal():
        return dev_server_env.client

    response = await get_health(create_app(settings, engine=engine, temporal=temporal))
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["database"] == {"ok": True}
    assert response.json()["temporal"]["ok"] is True


async def test_unavailable_when_temporal_does_not_answer(settings, engine, caplog):
    async def temporal():
        raise RuntimeError("Failed client connect: connection refused")

    response = await get_health(create_app(settings, engine=engine, temporal=temporal))
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "unavailable"
    assert body["database"] == {"ok": True}
    assert body["temporal"] == {"ok": False}  # why is in the server's log, not in a public answer
    assert "connection refused" in caplog.text


@pytest.mark.integration
async def test_unavailable_when_the_database_does_not_answer(settings, dev_server_env, caplog):
    async def temporal():
        return dev_server_env.client

    dead_database = make_engine(f"postgresql://nobody@127.0.0.1:{closed_port()}/none")
    response = await get_health(create_app(settings, engine=dead_database, temporal=temporal))
    body = response.json()
    assert response.status_code == 503
    assert body["database"] == {"ok": False} and "OperationalError" in caplog.text
    assert body["temporal"]["ok"] is True
