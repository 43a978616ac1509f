"""Reading marketers' YAML files into models, with errors that say where and what."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class SpecError(Exception):
    """A campaign, policy or lifecycle file cannot be used; the message says where and why."""


def read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(f"{where}: {problem}") from None


def validate(path: Path, model: type[M], document: Any) -> M:
    if not isinstance(document, dict):
        raise SpecError(f"{path}: the file must be a mapping of keys to values")
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise SpecError(f"{path}: {field}: {first['msg']}") from None


def load_model(path: Path, model: type[M]) -> M:
    return validate(path, model, read_yaml(path))
