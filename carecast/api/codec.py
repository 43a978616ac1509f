"""The codec endpoint the Temporal UI and CLI decode sealed payloads through (carecast/temporal_codec.py).

`POST /decode` and `POST /encode` take and give a JSON `Payloads`, the protocol of
Temporal's codec servers; a namespace in the path (`/default/decode`) is accepted too.
Browsers may call it only from the Temporal UI's origins (CORS). It decrypts whatever it
is handed, so it listens on 127.0.0.1 for the operator's own browser, never in `carecast api`.
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.json_format import ParseError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from carecast.config import Settings
from carecast.temporal_codec import EncryptionCodec, PayloadKeyError, transcode

MAX_BODY_BYTES = 4 * 1024 * 1024  # Temporal's own limit on a payload is 2 MB
LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def codec_app(codec: EncryptionCodec, ui_origins: Sequence[str]) -> Starlette:
    async def convert(request: Request) -> Response:
        direction = request.path_params["direction"]
        if direction not in ("encode", "decode"):
            return JSONResponse({"error": "POST to /encode or /decode"}, status_code=404)
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return JSONResponse({"error": "too large"}, status_code=413)
        try:
            return Response(transcode(codec, body, direction), media_type="application/json")
        except (ParseError, ValueError) as exc:  # PayloadKeyError is a ValueError: another key, or altered
            status = 422 if isinstance(exc, PayloadKeyError) else 400
            return JSONResponse({"error": str(exc) if status == 422 else "not a JSON Payloads"}, status_code=status)

    directions = "{direction:str}"
    routes = [
        Route(f"/{directions}", convert, methods=["POST"]),
        Route(f"/{{namespace:str}}/{directions}", convert, methods=["POST"]),
    ]
    cors = Middleware(
        CORSMiddleware,
        allow_origins=list(ui_origins),
        allow_methods=["POST"],
        allow_headers=["Content-Type", "X-Namespace", "Authorization"],
    )
    # A page elsewhere cannot reach it by a name it resolves to 127.0.0.1 (DNS rebinding).
    local = Middleware(TrustedHostMiddleware, allowed_hosts=list(LOCAL_HOSTS))
    return Starlette(routes=routes, middleware=[local, cors])


def ui_origins(settings: Settings) -> list[str]:
    """Where the dev server's UI runs: the origins allowed by default."""
    return [f"http://{host}:{settings.temporal_ui_port}" for host in ("127.0.0.1", "localhost")]
