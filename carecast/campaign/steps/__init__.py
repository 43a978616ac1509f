"""The kinds of journey step, as one tagged union: a step is the kind whose key it has.

A new kind is a module here (its model, jumps, waits, listens_to), a line in the
union `Step` below, and an arm in the journey workflow's handlers
(workflows/journey/handlers.py), whose `match` must cover every kind.
"""

from __future__ import annotations

import typing
from typing import Annotated, Any

from pydantic import BeforeValidator, Discriminator, Tag

from carecast.campaign.steps.base import StepBase
from carecast.campaign.steps.branch import Branch
from carecast.campaign.steps.exit import Exit
from carecast.campaign.steps.goto import Goto
from carecast.campaign.steps.send import Send
from carecast.campaign.steps.update import Update
from carecast.campaign.steps.wait import Wait
from carecast.campaign.steps.wait_for import WaitFor
from carecast.campaign.steps.wait_until import WaitUntil


def _one_kind(value: Any) -> Any:
    if isinstance(value, dict):
        present = [name for name in KIND_NAMES if name in value]
        if len(present) != 1:
            raise ValueError(
                f"step {value.get('id')!r} needs exactly one of {', '.join(KIND_NAMES)} (found {len(present)})"
            )
    return value


def step_kind(value: Any) -> str | None:
    """The kind of a step written as a mapping (the one kind key it has), or of a step model."""
    if isinstance(value, StepBase):
        return value.kind
    if not isinstance(value, dict):
        return None
    present = [name for name in KIND_NAMES if name in value]
    return present[0] if len(present) == 1 else None


Step = Annotated[
    Annotated[Send, Tag("send")]
    | Annotated[Wait, Tag("wait")]
    | Annotated[WaitUntil, Tag("wait_until")]
    | Annotated[WaitFor, Tag("wait_for")]
    | Annotated[Branch, Tag("branch")]
    | Annotated[Update, Tag("update")]
    | Annotated[Goto, Tag("goto")]
    | Annotated[Exit, Tag("exit")],
    Discriminator(
        step_kind,
        custom_error_type="step_kind",
        custom_error_message="a step is a mapping with one kind key, such as send or wait",
    ),
    BeforeValidator(_one_kind),
]

# The kinds, in the union's order, read off it.
KINDS: tuple[type[StepBase], ...] = tuple(
    typing.get_args(member)[0] for member in typing.get_args(typing.get_args(Step)[0])
)
KIND_NAMES = tuple(kind.kind for kind in KINDS)
