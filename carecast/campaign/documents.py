"""Reading marketers' YAML files into models, with errors at `path:line:col`.

PyYAML composes the file into nodes that keep their position; pydantic reports
each error with a location path (`steps.2.send.template`); walking that path
through the nodes gives the line and column to point at. Every problem in a file
is reported, not just the first, so one `carecast validate` run shows them all.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, Tag, ValidationError

from carecast.campaign.patterns import describe

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Problem:
    path: Path
    line: int | None
    column: int | None
    message: str

    def __str__(self) -> str:
        where = str(self.path)
        if self.line is not None:
            where += f":{self.line}" + (f":{self.column}" if self.column is not None else "")
        return f"{where}: {self.message}"


class InvalidFile(Exception):
    """A campaign, policy or lifecycle file cannot be used; the message says where and why."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems

    @classmethod
    def at(cls, path: Path, node: yaml.Node | None, message: str) -> InvalidFile:
        return cls([problem_at(path, node, message)])


def problem_at(path: Path, node: yaml.Node | None, message: str) -> Problem:
    if node is None:
        return Problem(path, None, None, message)
    return Problem(path, node.start_mark.line + 1, node.start_mark.column + 1, message)


@dataclass(frozen=True)
class Document:
    path: Path
    data: Any
    node: yaml.Node | None

    def node_at(self, loc: tuple[Any, ...], key: bool = False) -> yaml.Node | None:
        """The node a pydantic location points to (the key itself when `key`), or its nearest parent."""
        node = self.node
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                match = next(((k, v) for k, v in node.value if k.value == part), None)
                if match is None:
                    continue  # a tag such as a union member's name, or a missing field: stay here
                node = match[0] if key and part == loc[-1] else match[1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                node = node.value[part]
        return node


def read_yaml(path: Path) -> Document:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidFile([Problem(path, None, None, f"cannot read the file: {exc.strerror}")]) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        if mark is None:
            raise InvalidFile([Problem(path, None, None, problem)]) from None
        raise InvalidFile([Problem(path, mark.line + 1, mark.column + 1, problem)]) from None
    return Document(path, data, node)


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """The keys the model accepts at the mapping that holds `loc`'s last part, the required ones first."""
    annotation: Any = model
    for part in loc[:-1]:
        annotation = _tagged_member(annotation, part) or _unwrap(annotation, part)
        if annotation is None:
            return None
    annotation = _unwrap(annotation, None)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        fields = sorted(annotation.model_fields.items(), key=lambda item: not item[1].is_required())
        return [info.alias or name for name, info in fields]
    return None


def _without_tags(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """The location with the tags of tagged unions left out: the path through the file itself.

    A step's location reads `steps.1.wait.wait`, tag then field; the file has the key once.
    """
    annotation: Any = model
    kept = []
    for part in loc:
        member = _tagged_member(annotation, part)
        if member is not None:
            annotation = member
            continue
        kept.append(part)
        annotation = _unwrap(annotation, part) if annotation is not None else None
    return tuple(kept)


def _tagged_member(annotation: Any, part: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return None
    tagged = {_tag(m): typing.get_args(m)[0] for m in typing.get_args(annotation) if _tag(m) is not None}
    return tagged.get(part)


def _unwrap(annotation: Any, part: Any) -> Any:
    """One step along a location without tags: into a model's field, a list's items, a dict's values."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            models = [a for a in members if isinstance(a, type) and issubclass(a, BaseModel)]
            annotation = models[0] if models else members[0]
        else:
            break
    if part is None:
        return annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        field = annotation.model_fields.get(part)
        return field.annotation if field else None
    if origin in (list, tuple) and isinstance(part, int):
        return typing.get_args(annotation)[0]
    if origin is dict:
        return typing.get_args(annotation)[1]
    return None


def _tag(member: Any) -> str | None:
    """The tag of a tagged union's member (`Annotated[Send, Tag("send")]`), else None."""
    if typing.get_origin(member) is not typing.Annotated:
        return None
    return next((meta.tag for meta in typing.get_args(member)[1:] if isinstance(meta, Tag)), None)


def problems_from(document: Document, model: type[BaseModel], exc: ValidationError) -> list[Problem]:
    problems = []
    for error in exc.errors():
        tagged = tuple(error["loc"])
        loc = _without_tags(model, tagged)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, tagged)
            message = f"unknown key {loc[-1]!r}" + (f"; allowed here: {', '.join(allowed)}" if allowed else "")
            node = document.node_at(loc, key=True)
        else:
            if error["type"] == "missing":
                message = f"missing required key {loc[-1]!r}"
            elif error["type"] == "string_pattern_mismatch":
                message = f"{error['input']!r} is not allowed here; write {describe(error['ctx']['pattern'])}"
            node = document.node_at(loc)
        problems.append(problem_at(document.path, node, message))
    return problems


def validate(document: Document, model: type[M], context: dict[str, Any] | None = None) -> M:
    if not isinstance(document.data, dict):
        raise InvalidFile.at(document.path, document.node, "the file must be a mapping of keys to values")
    try:
        return model.model_validate(document.data, context=context)
    except ValidationError as exc:
        raise InvalidFile(problems_from(document, model, exc)) from None


def load_model(path: Path, model: type[M], context: dict[str, Any] | None = None) -> M:
    return validate(read_yaml(path), model, context)
