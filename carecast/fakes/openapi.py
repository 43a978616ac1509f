"""Checks requests against the providers' official OpenAPI descriptions (copied under specs/).

Each description is loaded once per process (the Twilio one is 1.9 MB). The one
known defect of SendGrid's description is patched on load: top-level
`custom_args` is declared a string, while the API and the official SDK send an
object of strings.

openapi-core checks the whole request. A JSON body, though, goes to a compiled
validator (jsonschema-rs) over the same schema: openapi-core's pure-Python
schema walk took 0.25 s of CPU for one SendGrid batch of 1,000 personalizations,
which on a small machine competed with the carecast under test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.templating.paths.exceptions import PathError
from openapi_core.validation.request.exceptions import RequestValidationError
from openapi_core.validation.request.validators import V30RequestParametersValidator, V30RequestSecurityValidator
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


@dataclass(frozen=True)
class _Api:
    openapi: OpenAPI
    server: str
    document: dict[str, Any]
    security: V30RequestSecurityValidator
    parameters: V30RequestParametersValidator


@cache
def _api(path: Path) -> _Api:
    document = json.loads(path.read_text())
    if path == SENDGRID_SPEC:
        document = _patched_sendgrid(document)
    openapi = OpenAPI.from_dict(document)
    return _Api(
        openapi,
        document["servers"][0]["url"],
        document,
        V30RequestSecurityValidator(openapi.spec),
        V30RequestParametersValidator(openapi.spec),
    )


def _as_json_schema(node: Any) -> Any:
    """OpenAPI 3.0's `nullable: true` as JSON Schema says it: null among the allowed types."""
    if isinstance(node, list):
        return [_as_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _as_json_schema(value) for key, value in node.items()}
    if node.pop("nullable", False) is True:
        if "type" in node:
            node["type"] = [node["type"], "null"]
        if "enum" in node:
            node["enum"] = [*node["enum"], None]
    return node


@cache
def _json_body_validator(spec: Path, path: str, method: str) -> jsonschema_rs.Validator | None:
    """The compiled schema of the JSON body of an operation at a literal path; None: no such body."""
    document = _api(spec).document
    body = document["paths"].get(path, {}).get(method, {}).get("requestBody")
    if body is None:
        return None
    pointer = "#/paths/" + path.replace("~", "~0").replace("/", "~1") + f"/{method}/requestBody"
    if "$ref" in body:
        pointer, body = body["$ref"], document["components"]["requestBodies"][body["$ref"].rsplit("/", 1)[-1]]
    if "application/json" not in body.get("content", {}):
        return None
    root = _as_json_schema({key: document[key] for key in ("paths", "components")})  # a new tree
    return jsonschema_rs.Draft4Validator({**root, "$ref": f"{pointer}/content/application~1json/schema"})


def _body_errors(validator: jsonschema_rs.Validator, body: bytes) -> list[str]:
    try:
        instance = json.loads(body)
    except ValueError as exc:
        return [f"(body): not JSON: {exc}"]
    if validator.is_valid(instance):
        return []
    return [
        f"{'/'.join(str(p) for p in error.instance_path) or '(body)'}: {error.message}"
        for error in validator.iter_errors(instance)
    ]


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
    api = _api(spec)
    content_type = headers.get("content-type", "").split(";")[0].strip()
    request = _Request(
        host_url=api.server,
        path=path,
        method=method.lower(),
        body=body,
        content_type=content_type,
        parameters=RequestParameters(
            query=ImmutableMultiDict(query or {}), header=Headers(headers), cookie=ImmutableMultiDict(), path={}
        ),
    )
    body_validator = _json_body_validator(spec, path, method.lower()) if content_type == "application/json" else None
    try:
        if body_validator is None:
            api.openapi.validate_request(request)
            return []
        api.security.validate(request)
        api.parameters.validate(request)
    except (RequestValidationError, PathError) as exc:
        return _messages(exc)
    return _body_errors(body_validator, body)


def warm() -> None:
    """Loads both descriptions now (a fixture does this once, not in the first test)."""
    _api(SENDGRID_SPEC)
    _api(TWILIO_SPEC)
