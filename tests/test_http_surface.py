"""What any visitor of the HTTP API meets: no public docs, security headers on pages, health without
internals, and bodies capped before they are parsed (security review findings 2, 6, 12, 13)."""

from dataclasses import replace

import httpx
import pytest

from carecast.api.app import create_app

pytestmark = pytest.mark.store


async def unreachable_temporal():
    raise RuntimeError("Failed client connect: tcp connect error 10.0.0.7:7233 (os error 111)")


def client_for(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://carecast")


@pytest.fixture
def api(settings, engine):
    return client_for(create_app(replace(settings, api_key="k" * 32), engine=engine, temporal=unreachable_temporal))


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
async def test_the_api_docs_are_not_public_unless_asked_for(settings, engine, api, path):
    assert (await api.get(path)).status_code == 404
    with_docs = create_app(replace(settings, api_docs=True), engine=engine, temporal=unreachable_temporal)
    assert (await client_for(with_docs).get(path)).status_code == 200


async def test_pages_carry_security_headers(api):
    page = await api.get("/u/not-a-token")
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"


async def test_health_says_what_is_down_without_hosts_or_driver_text(api):
    response = await api.get("/healthz")
    body = response.json()
    assert response.status_code == 503 and body["temporal"] == {"ok": False}
    assert "10.0.0.7" not in response.text and "tcp connect" not in response.text


@pytest.mark.parametrize(
    ("path", "size"),
    [("/u/anything", 64 * 1024 + 1), ("/webhooks/sendgrid", 1024 * 1024 + 1), ("/v1/events", 256 * 1024 + 1)],
)
async def test_an_oversized_body_is_413_before_it_is_read(api, path, size):
    response = await api.post(path, content=b"x" * size, headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and "too large" in response.text


@pytest.mark.parametrize(("kind", "limit"), [("events", 256), ("page", 64)])
async def test_a_body_without_a_length_that_grows_too_large_is_413_too(api, settings, kind, limit):
    async def chunks():
        for _ in range(300):
            yield b"x" * 1024

    path = "/v1/events" if kind == "events" else f"/u/{settings.link_signer().token('c-1', version=0)}"
    response = await api.post(path, content=chunks(), headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413 and f"at most {limit} KiB" in response.text
