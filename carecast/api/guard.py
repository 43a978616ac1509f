"""What every request and response passes on its way: body size caps and security headers.

Bodies are capped per path before any handler parses them: a declared Content-Length
over the cap is refused at once, and a body that arrives without one is counted as it
comes and refused as soon as it passes the cap (413 either way). SendGrid's webhook
must read its raw body to verify the signature, so the cap is what protects it.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

KIB = 1024
# (path prefix, the largest body it takes), first match wins.
BODY_LIMITS = (
    ("/u/", 64 * KIB),  # the preference form and one-click unsubscribe
    ("/webhooks/", 1024 * KIB),  # a SendGrid event batch, a Twilio callback
    ("/v1/", 256 * KIB),  # an event or a contact (README: "HTTP API")
)
DEFAULT_LIMIT = 64 * KIB

# Pages have no script, post only to themselves, and are never framed.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)


def body_limit(path: str) -> int:
    return next((limit for prefix, limit in BODY_LIMITS if path.startswith(prefix)), DEFAULT_LIMIT)


class BodyTooLarge(HTTPException):
    """Raised from `receive` as the body passes its cap; FastAPI and Starlette answer it as a 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, _too_large_detail(limit))


class Guard:
    """ASGI middleware: caps request bodies, adds security headers (and a CSP on HTML pages)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(send, limit)
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                headers += SECURITY_HEADERS
                if any(k == b"content-type" and v.startswith(b"text/html") for k, v in headers):
                    headers.append((b"content-security-policy", CONTENT_SECURITY_POLICY.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except BodyTooLarge:
            if not started:
                await _too_large(send, limit)


def _too_large_detail(limit: int) -> str:
    return f"request body too large: at most {limit // KIB} KiB here"


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps({"detail": _too_large_detail(limit)}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *SECURITY_HEADERS]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})
