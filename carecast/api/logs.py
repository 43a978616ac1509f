"""Access logs without tokens or contact ids: `/u/<token>` and `/v1/contacts/<id>` are logged redacted."""

from __future__ import annotations

import copy
import logging
import re
from typing import Any
from urllib.parse import unquote

from uvicorn.config import LOGGING_CONFIG

REDACTED = (
    (re.compile(r"^/u/[^/?#]*"), "/u/[token]"),
    (re.compile(r"^/v1/contacts/[^/?#]*"), "/v1/contacts/[id]"),
)


def redacted(path: str) -> str:
    path = unquote(path)  # uvicorn logs the raw path: /%75/<token> reaches the same route as /u/<token>
    for pattern, replacement in REDACTED:
        path = pattern.sub(replacement, path)
    return path


class RedactTokens(logging.Filter):
    """For uvicorn's access log, whose record args are (client, method, path, http version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, path, version, status = record.args
            record.args = (client, method, redacted(str(path)), version, status)
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's own logging configuration, with the access log redacted."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_tokens"] = {"()": RedactTokens}
    config["handlers"]["access"]["filters"] = ["redact_tokens"]
    return config
