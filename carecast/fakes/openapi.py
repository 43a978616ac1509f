"""Checks requests against the providers' official OpenAPI descriptions (copied under specs/).

Each description is loaded once per process (the Twilio one is 1.9 MB). The one
known defect of SendGrid's description is patched on load: top-level
`custom_args` is declared a string, while the API and the official SDK send an
object of strings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.validation.request.exceptions import RequestValidationError
from werkzeug.datastructures import Headers, ImmutableMultiDict

SPECS = Path(__file__).parent / "specs"
SENDGRID_SPEC = SPECS / "sendgrid" / "tsg_mail_v3.json"
TWILIO_SPEC = SPECS / "twilio" / "twilio_api_v2010.json"


@dataclass(frozen=True)
class _Request:
    """A request in the shape openapi-core reads, addressed to the spec's own server."""

    host_url: str
    path: str
    method: str
    body: bytes
    content_type: str
    parameters: RequestParameters

    @property
    def full_url_pattern(self) -> str:
        return self.host_url + self.path


def _patched_sendgrid(spec: dict) -> dict:
    body = spec["components"]["requestBodies"]["PostMailSend"]["content"]["application/json"]["schema"]
    if body["properties"]["custom_args"].get("type") == "string":
        body["properties"]["custom_args"] = {"type": "object", "additionalProperties": {"type": "string"}}
    return spec


@cache
def _api(path: Path) -> tuple[OpenAPI, str]:
    spec = json.loads(path.read_text())
    if path == SENDGRID_SPEC:
        spec = _patched_sendgrid(spec)
    return OpenAPI.from_dict(spec), spec["servers"][0]["url"]


def _messages(exc: Exception) -> list[str]:
    """The schema errors under an openapi-core exception, as readable lines."""
    found: list[str] = []
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        error = stack.pop()
        if id(error) in seen:
            continue
        seen.add(id(error))
        for schema_error in getattr(error, "schema_errors", None) or []:
            where = "/".join(str(p) for p in schema_error.absolute_path) or "(body)"
            found.append(f"{where}: {schema_error.message}")
        stack += [e for e in (error.__cause__, error.__context__) if e is not None]
    return found or [str(exc)]


def validate(
    spec: Path, method: str, path: str, headers: dict[str, str], body: bytes, query: dict[str, str] | None = None
) -> list[str]:
    """Every way the request breaks the description; empty when it is valid."""
    api, server = _api(spec)
    content_type = headers.get("content-type", "").split(";")[0].strip()
    request = _Request(
        host_url=server,
        path=path,
        method=method.lower(),
        body=body,
        content_type=content_type,
        parameters=RequestParameters(
            query=ImmutableMultiDict(query or {}), header=Headers(headers), cookie=ImmutableMultiDict(), path={}
        ),
    )
    try:
        api.validate_request(request)
    except RequestValidationError as exc:
        return _messages(exc)
    return []


def warm() -> None:
    """Loads both descriptions now (a fixture does this once, not in the first test)."""
    _api(SENDGRID_SPEC)
    _api(TWILIO_SPEC)
