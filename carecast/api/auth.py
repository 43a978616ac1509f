"""Bearer API keys for the write endpoints (`Authorization: Bearer <CARECAST_API_KEY>`)."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request, status


def require_api_key(expected: str | None):
    """A FastAPI dependency that admits only requests carrying the configured key."""

    async def check(request: Request) -> None:
        if expected is None:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "no API key is configured: set CARECAST_API_KEY for this server",
            )
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "send the API key as 'Authorization: Bearer <key>'",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check
