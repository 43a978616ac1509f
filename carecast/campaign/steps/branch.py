"""`branch`: go to the first case whose condition holds for the contact (and trigger event), else `otherwise`."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field

from carecast.campaign.steps.base import Jump, Name, StepBase, Strict
from carecast.filters.model import FilterError, parse_filter


def _checked_condition(document: dict[str, Any]) -> dict[str, Any]:
    try:
        parse_filter(document, allow_event=True)
    except FilterError as exc:
        raise ValueError(str(exc)) from None
    return document


# Filters stay in their YAML form (what is hashed, stored and carried by journeys); parsing checks them.
Condition = Annotated[dict[str, Any], AfterValidator(_checked_condition)]


class BranchCase(Strict):
    when: Condition
    goto: Name


class BranchChoice(Strict):
    cases: list[BranchCase] = Field(min_length=1)
    otherwise: Name | None = Field(default=None, description="step when no case matches; the next step if unset")


class Branch(StepBase):
    kind = "branch"
    branch: BranchChoice

    def falls_through(self) -> bool:
        return self.branch.otherwise is None

    def jumps(self) -> list[Jump]:
        jumps: list[Jump] = [(c.goto, ("branch", "cases", n, "goto")) for n, c in enumerate(self.branch.cases)]
        if self.branch.otherwise is not None:
            jumps.append((self.branch.otherwise, ("branch", "otherwise")))
        return jumps
